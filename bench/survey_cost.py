"""Benchmark: what the post-call survey costs the agent ``<Dial action>`` webhook (issue 17.1).

Not a test. The claim: running the survey adds no measurable cost to ``/twilio/agent-dial``
(the request that ends the conversation: offer, queue entry and agent rows updated, the
console's event written; with a survey, the live surveys looked up — one ``stat`` of
surveys.yaml — and a ``<Redirect>`` to the survey's own request instead of ``<Hangup/>``).
A first version read the call's language in that webhook's transaction and answered the
first question itself: +0.43 ms at p50 on SQLite (95% interval +0.12 .. +0.76), measurable;
hence the redirect.

Same run, same process, same database, same queue: calls alternate between the survey ON
(the queue is in surveys.yaml) and OFF (``SurveyService.live`` swapped for a configuration
without surveys), one call each in turn, so drift (the machine's load, the database's
growth, caches warming) falls on both arms alike. Each call is the whole flow through the
app in-process (Starlette's TestClient: the signed Twilio posts of tests.agent_flow —
/twilio/voice, the menu's <Gather>, the wait URL, <Leave/>, the <Enqueue> action's connect,
the agent leg answered); only the agent-dial post is timed (perf_counter around the
request, signature check and TwiML included; no network). The agent's wrap-up then frees
them for the next call. ``--calls`` per arm after ``--warmup`` calls per arm.

Reported per backend (SQLite file; PostgreSQL, a fresh database dropped afterwards): p50,
p90, p99 and mean of each arm, the difference of the medians with a bootstrap 95% interval
(2,000 resamples of each arm), and the load average before and after (the machine is
shared: other work runs during the measurement, on both arms alike).

    python bench/survey_cost.py                     # 400 calls per arm, both backends
    python bench/survey_cost.py --calls 100 --backends sqlite --no-write

Writes the section "## Post-call survey: cost to the agent-dial webhook (issue 17.1)" of
bench/results.md (other sections kept), raw figures to bench/out/.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness as h  # noqa: E402  (bench/harness.py: databases, machine, results)
from starlette.testclient import TestClient  # noqa: E402

from ivr.agents import repository as agents_repo  # noqa: E402
from ivr.app import create_app  # noqa: E402
from ivr.core.clock import FrozenClock  # noqa: E402
from ivr.core.db import make_engine  # noqa: E402
from ivr.core.migrate import upgrade  # noqa: E402
from ivr.core.settings import Settings  # noqa: E402
from ivr.surveys.policy import LiveSurveys  # noqa: E402
from tests.agent_flow import TwilioDriver  # noqa: E402

SECTION = "## Post-call survey: cost to the agent-dial webhook (issue 17.1)"
SURVEYS = """\
low_score: 2
surveys:
  csat:
    queues: [billing]
    intro: {he-IL: "שתי שאלות קצרות", en-US: "Two short questions"}
    questions:
      - id: satisfaction
        text: {he-IL: "עד כמה הייתם מרוצים?", en-US: "How satisfied were you?"}
      - id: agent
        text: {he-IL: "עד כמה הנציג עזר?", en-US: "How helpful was the agent?"}
    thanks: {he-IL: "תודה רבה", en-US: "Thank you"}
"""
TOKEN = "bench-auth-token"


def measure(url: str, work: Path, calls: int, warmup: int) -> dict[str, Any]:
    """Alternate survey ON / OFF calls through one app; the agent-dial posts' times."""
    surveys = work / "surveys.yaml"
    surveys.write_text(SURVEYS, encoding="utf-8")
    menus = work / "menus"
    shutil.copytree(HERE.parent / "menus", menus, ignore=shutil.ignore_patterns("*.json"))
    engine = make_engine(url, 2)
    clock = FrozenClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))  # a Monday, open
    with engine.begin() as conn:
        agents_repo.create_agent(conn, username="bench", name="Bench Agent",
                                 password="bench-pass-1", role="agent", queues=["billing"],
                                 reach_kind="client", reach_target="bench", now=clock.now())
    engine.dispose()
    # Pinned to the plain <Dial><Client> (conferences are the default): the measured
    # request is /twilio/agent-dial, as this section of bench/results.md has always been.
    settings = Settings(_env_file=None, database_url=url, menus_dir=menus,
                        twilio_auth_token=TOKEN, watch_menus=False, db_pool_size=4,
                        route_every_seconds=0, surveys_file=surveys,
                        callbacks_file=work / "no-callbacks.yaml", conference_calls=False)
    app = create_app(settings, clock)
    on_off: dict[str, list[float]] = {"on": [], "off": []}
    answered: dict[str, set[str]] = {"on": set(), "off": set()}
    with TestClient(app) as client:
        service = app.state.web.surveys
        live = {"on": service.live, "off": LiveSurveys(None)}
        r = client.post("/agent/login", json={"username": "bench", "password": "bench-pass-1"})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        client.cookies.clear()
        client.post("/agent/state", json={"state": "available"}, headers=auth)
        twilio = TwilioDriver(client, "http://testserver", TOKEN)
        rng = random.Random(17)
        total = 2 * (warmup + calls)
        for i in range(total):
            arm = "on" if i % 2 == 0 else "off"
            service.live = live[arm]
            number = f"+97254{rng.randrange(10**6, 10**7)}"
            sid = twilio.start(number, ["1", "1"])  # unknown caller: Hebrew, billing
            clock.advance(seconds=2)
            twilio.connect(sid)
            twilio.agent_answers(sid)
            clock.advance(seconds=10)  # a short talk: 860 calls stay in opening hours
            leg = twilio.calls[sid]
            params = twilio.params(leg, DialCallStatus="completed",
                                   DialCallSid=leg.agent_leg_sid, DialCallDuration="10")
            start = time.perf_counter()
            xml = twilio.post(leg.dial_action or "", params)
            elapsed = (time.perf_counter() - start) * 1000
            survey = "<Redirect" in xml and "/twilio/survey-start" in xml
            if survey != (arm == "on"):
                raise RuntimeError(f"call {i} ({arm}): unexpected answer {xml[:200]}")
            if i >= 2 * warmup:
                on_off[arm].append(elapsed)
                answered[arm].add(sid)
            twilio.caller_hangs_up(sid)
            w = client.post(f"/agent/calls/{sid}/wrapup", headers=auth,
                            json={"topic": "billing", "outcome": "solved", "resolved": True})
            if w.status_code != 201:
                raise RuntimeError(f"wrap-up {w.status_code}: {w.text[:200]}")
            clock.advance(seconds=2)
            del twilio.calls[sid]
    return {"on": on_off["on"], "off": on_off["off"]}


def median_diff(on: list[float], off: list[float], rounds: int = 2000,
                ) -> tuple[float, float, float]:
    """The difference of the medians (ON - OFF) and its bootstrap 95% interval."""
    rng = random.Random(7)
    diffs = sorted(statistics.median(rng.choices(on, k=len(on)))
                   - statistics.median(rng.choices(off, k=len(off))) for _ in range(rounds))
    return (statistics.median(on) - statistics.median(off), h.pct(diffs, 0.025),
            h.pct(diffs, 0.975))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="timed calls per arm")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls per arm first")
    parser.add_argument("--backends", default="sqlite,postgresql")
    h.add_results_options(parser, no_write=True)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with h.exclusive("survey_cost"):
        load_before = os.getloadavg()
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            with tempfile.TemporaryDirectory(prefix="survey-bench-") as tmp:
                work = Path(tmp)
                if backend == "sqlite":
                    url = f"sqlite:///{work / 'bench.db'}"
                    upgrade(url)
                    figures = measure(url, work, args.calls, args.warmup)
                else:
                    with h.pg_database(h.PG_ADMIN_URL, f"ivr_survey_bench_{os.getpid()}",
                                     migrate=True) as url:
                        figures = measure(url, work, args.calls, args.warmup)
            load = os.getloadavg()
            results[backend] = {**figures, "load_after": load}
            print(f"{backend}: done (load average {load[0]:.2f})", file=sys.stderr)
        load_after = os.getloadavg()
    h.write_raw("survey_cost", {"git": h.git_rev(), "machine": h.machine_line(),
                              "load_before": load_before, "load_after": load_after,
                              "results": results})
    lines = [SECTION, "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, git {h.git_rev()}, {h.machine_line()}. "
             f"`python bench/survey_cost.py --calls {args.calls} --warmup {args.warmup}`: "
             f"{args.calls} timed calls per arm after {args.warmup} per arm of warm-up, the "
             "arms alternating call by call in one process over one database; the time of "
             "the agent `<Dial action>` post in-process (TestClient: signature, use case, "
             "TwiML; no network). Baseline = the OFF arm of the same run.", "",
             f"Load average before {load_before[0]:.2f} / {load_before[1]:.2f} / "
             f"{load_before[2]:.2f}, after {load_after[0]:.2f} / {load_after[1]:.2f} / "
             f"{load_after[2]:.2f} (1 / 5 / 15 min): a shared machine (other sessions' work "
             "ran at the same time, on both arms alike).", "",
             "| backend | survey | p50 ms | p90 ms | p99 ms | mean ms | ON - OFF p50 (95% CI) |",
             "|---|---|---|---|---|---|---|"]
    for backend, r in results.items():
        diff, low, high = median_diff(r["on"], r["off"])
        for arm in ("off", "on"):
            s = h.summary(r[arm])
            cell = (f"{diff:+.3f} ms ({low:+.3f} .. {high:+.3f})" if arm == "on" else "")
            lines.append(f"| {backend} | {arm.upper()} | {s['p50']:.2f} | {s['p90']:.2f} | "
                         f"{s['p99']:.2f} | {s['mean']:.2f} | {cell} |")
    lines.append("")
    h.publish("\n".join(lines), args)
    return 0


if __name__ == "__main__":
    sys.exit(h.run(main))
