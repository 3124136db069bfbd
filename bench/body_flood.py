"""Memory and webhook latency under a large-body flood (issue 15, item 2).

Against a real ``ivr serve`` (SQLite, the demo menus, 127.0.0.1 only), two phases of the
same length, same run:

* quiet: a caller's webhooks (signed ``/twilio/voice``, a new CallSid each) at a fixed rate;
* flood: the same webhooks while ``--attackers`` unauthenticated clients each send
  ``--body-mb`` MB bodies over and over to ``/agent/login`` and ``/twilio/voice``, half with
  a ``Content-Length``, half chunked, each stopped when the server answers or drops it.

It reports the server's peak resident memory (``/proc/PID/status`` VmRSS, sampled every
20 ms) and the webhooks' p50/p99 in each phase, and how many bytes of each hostile body
the server took before refusing it. ``--before REV`` also measures the code of a git
revision (a worktree served with ``PYTHONPATH``), so the fix is compared in the same run.
Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness as h
import httpx
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 64 * 1024


@dataclass
class Phase:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    peak_rss_mb: float = 0.0
    start_rss_mb: float = 0.0
    refused: int = 0
    attacks: int = 0
    sent_mb: list[float] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (uvicorn may fork)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def sampler(pid: int, phase: Phase, stop: threading.Event) -> None:
    while not stop.is_set():
        phase.peak_rss_mb = max(phase.peak_rss_mb, rss_mb(pid))
        stop.wait(0.02)


def caller(base: str, rate: float, seconds: float, phase: Phase) -> None:
    validator = RequestValidator(h.TOKEN)
    url = base + "/twilio/voice"
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=15) as client:
        n = 0
        while time.monotonic() < deadline and n < int(rate * seconds) + 1:
            params = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
                      "From": "+972501234567", "To": "+97235550100",
                      "CallStatus": "ringing", "Direction": "inbound"}
            sig = validator.compute_signature(url, params)
            started = time.perf_counter()
            try:
                r = client.post(url, data=params, headers={"X-Twilio-Signature": sig})
                if r.status_code != 200 or "<Response" not in r.text:
                    phase.errors += 1
            except httpx.HTTPError:
                phase.errors += 1
            phase.latencies_ms.append((time.perf_counter() - started) * 1000)
            n += 1
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))


def attack_once(port: int, path: str, body_mb: int, chunked: bool) -> tuple[float, bool]:
    """One hostile body; (MB the server took before it answered or hung up, refused)."""
    total = body_mb * 1024 * 1024
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n")
    head += ("Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {total}\r\n")
    sent = 0
    refused = False
    block = b"a" * CHUNK
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall((head + "\r\n").encode())
        s.setblocking(False)
        try:
            while sent < total:
                with contextlib.suppress(BlockingIOError):
                    answer = s.recv(256)
                    if not answer or b" 413 " in answer[:20]:
                        refused = bool(answer)
                        break
                piece = (f"{CHUNK:x}\r\n".encode() + block + b"\r\n") if chunked else block
                try:
                    s.sendall(piece)
                except BlockingIOError:
                    time.sleep(0.001)
                    continue
                sent += CHUNK
        except OSError:
            refused = True  # the server closed the connection on us
    return sent / (1024 * 1024), refused


def attacker(port: int, body_mb: int, seconds: float, phase: Phase, k: int) -> None:
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline and i < 200:
        path = ("/agent/login", "/twilio/voice")[(i + k) % 2]
        with contextlib.suppress(OSError):
            mb, refused = attack_once(port, path, body_mb, chunked=bool(i % 2))
            phase.sent_mb.append(mb)
            phase.refused += refused
            phase.attacks += 1
        i += 1


def run_phase(server: h.Server, *, attackers: int, body_mb: int, seconds: float,
              rate: float) -> Phase:
    phase = Phase(start_rss_mb=rss_mb(server.pid))
    stop = threading.Event()
    threads = [threading.Thread(target=sampler, args=(server.pid, phase, stop))]
    threads += [threading.Thread(target=attacker, args=(server.port, body_mb, seconds, phase,
                                                        k)) for k in range(attackers)]
    for t in threads:
        t.start()
    caller(server.base, rate, seconds, phase)
    for t in threads[1:]:
        t.join(timeout=seconds + 60)
    stop.set()
    threads[0].join()
    return phase


def measure(label: str, code_root: Path, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="body-flood-") as tmp:
        work = Path(tmp)
        env = h.ivr_env(f"sqlite:///{work / 'ivr.db'}", ROOT / "menus", pg_pool=4)
        env["PYTHONPATH"] = str(code_root)
        server = h.ivr_server(f"ivr serve ({label})", env, work, f"body-flood-{label}.log")
        with server:
            quiet = run_phase(server, attackers=0, body_mb=args.body_mb,
                              seconds=args.seconds, rate=args.rate)
            flood = run_phase(server, attackers=args.attackers, body_mb=args.body_mb,
                              seconds=args.seconds, rate=args.rate)
            alive = server.alive()
    out: dict[str, Any] = {"label": label, "alive_after": alive}
    for name, p in (("quiet", quiet), ("flood", flood)):
        out[name] = {"webhooks": len(p.latencies_ms), "errors": p.errors,
                     "p50_ms": round(h.pct(p.latencies_ms, 0.5), 1) if p.latencies_ms else None,
                     "p99_ms": round(h.pct(p.latencies_ms, 0.99), 1) if p.latencies_ms else None,
                     "start_rss_mb": round(p.start_rss_mb, 1),
                     "peak_rss_mb": round(p.peak_rss_mb, 1), "attacks": p.attacks,
                     "refused": p.refused,
                     "max_sent_mb": round(max(p.sent_mb), 2) if p.sent_mb else None}
    return out


def worktree(rev: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="body-flood-before-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                   check=True, capture_output=True)
    return path


def section(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = ["## Large-body flood (issue 15)", "",
             f"`python bench/body_flood.py --seconds {args.seconds:g} --attackers "
             f"{args.attackers} --body-mb {args.body_mb}"
             + (f" --before {args.before}" if args.before else "") + f"`, {h.stamp()}, "
             f"git {h.git_rev()}, {h.machine_line()}. One `ivr serve` (SQLite, demo menus); "
             f"a caller's signed `/twilio/voice` at {args.rate:g}/s in both phases; in the "
             f"flood phase {args.attackers} clients send {args.body_mb} MB bodies to "
             "`/agent/login` and `/twilio/voice` (half with Content-Length, half chunked), "
             "each until the server answers or drops it. Peak RSS sampled every 20 ms.", "",
             "| code | phase | webhooks | errors | p50 ms | p99 ms | peak RSS MB | "
             "hostile bodies | refused | most MB taken |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for name in ("quiet", "flood"):
            p = r[name]
            lines.append(f"| {r['label']} | {name} | {p['webhooks']} | {p['errors']} | "
                         f"{p['p50_ms']} | {p['p99_ms']} | {p['peak_rss_mb']} | "
                         f"{p['attacks']} | {p['refused']} | {p['max_sent_mb']} |")
    load = Path("/proc/loadavg").read_text().split()[:3]
    lines += ["", f"Load average at the end: {' '.join(load)} (2 cores)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="each phase's length")
    parser.add_argument("--rate", type=float, default=20.0, help="webhooks per second")
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--body-mb", type=int, default=300)
    parser.add_argument("--before", help="also measure this git revision's code (a "
                                         "worktree), e.g. a0dcf49")
    h.add_results_options(parser, no_write=True)
    args = parser.parse_args()
    results = []
    if args.before:
        path = worktree(args.before)
        try:
            results.append(measure(f"before ({args.before})", path, args))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(path)], check=False, capture_output=True)
    results.append(measure(f"this ({h.git_rev()})", ROOT, args))
    h.write_raw("body-flood", results)
    h.publish(section(results, args), args)
    return 0


if __name__ == "__main__":
    sys.exit(h.run(main))
