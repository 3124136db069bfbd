"""The ``ivr`` command.

Exit codes: 0 success (warnings allowed), 1 the user's input has errors (e.g. a menu file),
2 bad command-line usage, 3 an internal error (a bug or an unreachable service).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ivr.core.settings import Settings

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# Seconds a stopping server waits for open requests. Agent consoles hold an event stream
# open for ever; they reconnect (Last-Event-ID) to another process and miss nothing.
SHUTDOWN_GRACE = 5
# Seconds Twilio waits for a webhook's answer (then it tries the fallback URL); the
# simulator waits as long.
TWILIO_TIMEOUT = 15


class UserError(Exception):
    pass


def _menus_check(settings: Settings, target: Path | None, caller_time: bool = False) -> int:
    """Every problem once, file by file (``file:line:col: severity: path: message``), then
    a count. A single file is checked with the other menus of its folder (sub-menus); when
    it depends on a file with errors, those errors are printed too (it says "see above")."""
    from ivr.menu.bundle import assemble  # noqa: PLC0415
    from ivr.menu.loader import load_menu_file, menu_files  # noqa: PLC0415

    path = target or settings.menus_dir
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    files = menu_files(path) if path.is_dir() else [path]
    directory = path if path.is_dir() else path.parent
    siblings = menu_files(directory)
    if not path.is_dir() and path not in siblings:
        siblings.append(path)
    parsed = [(f, *load_menu_file(f)) for f in siblings]
    _bundle, report = assemble(parsed, None, settings.entry_menu)
    wanted = {str(f) for f in files}
    shown = [p for p in report.problems if p.file in wanted]
    causes = {p.cause for p in shown if p.cause} - wanted
    while causes:  # the errors a wanted file's "not checked against" lines point at
        wanted |= causes
        shown = [p for p in report.problems if p.file in wanted]
        causes = {p.cause for p in shown if p.cause} - wanted
    leaving = _check_leaving_reasons(settings, parsed, wanted)
    if leaving:
        shown = sorted({*shown, *leaving})
    for p in shown:
        print(p)
    errors = sum(p.severity == "error" for p in shown)
    warnings = len(shown) - errors
    if report.fatal and path.is_dir() and report.fatal_cause is None:
        print(f"{path}: error: {report.fatal}")  # the entry menu's file has no errors itself
        errors += 1
    # What the menus cost the caller (ivr.menu.cost): the ends of the files checked, when
    # asked for or when a menu among them sets its caller_time (a budget, speaking rates).
    checked = [lm for f, lm, _ in parsed if lm is not None and str(f) in wanted]
    names = {lm.name for lm in checked}
    rows = [c for c in report.caller_time if c.menu in names]
    if rows and (caller_time or any("caller_time" in lm.menu.model_fields_set
                                    for lm in checked)):
        print("Seconds of speech before each queue, transfer and hang-up (shortest key path):")
        for c in rows:
            print(f"  {c.line()}")
    if path.is_dir() and settings.surveys_file.exists():  # the surveys name its queues
        errors, warnings = _check_surveys(settings, parsed, errors, warnings)
        files = [*files, settings.surveys_file]
    print(f"{len(files)} file(s) checked: {errors} error(s), {warnings} warning(s)")
    return EXIT_USER if errors else EXIT_OK


def _check_leaving_reasons(settings: Settings, parsed: list[Any], wanted: set[str],
                           ) -> list[Any]:
    """Menu options' leaving reasons against wrapup.yaml's list (the retention feature's
    file; its own mistakes are `ivr retention check`'s to report: then the defaults)."""
    from ivr.menu.checks import check_leaving_reasons  # noqa: PLC0415
    from ivr.retention.config import DEFAULT_LISTS, ListsError, load_lists  # noqa: PLC0415

    menus = {lm.name: lm for f, lm, _ in parsed if lm is not None and str(f) in wanted}
    if not any(o.leaving_reason for lm in menus.values() for n in lm.menu.nodes.values()
               for o in getattr(n, "options", {}).values()):
        return []
    source, lists = "the built-in lists (no wrap-up lists file)", DEFAULT_LISTS
    if settings.wrapup_file.exists():
        try:
            source, lists = str(settings.wrapup_file), load_lists(settings.wrapup_file)
        except ListsError:
            source = (f"the built-in lists ({settings.wrapup_file} has mistakes: "
                      "`ivr retention check`)")
    return check_leaving_reasons(menus, [r.code for r in lists.leaving_reasons], source)


def _check_surveys(settings: Settings, parsed: list[Any], errors: int, warnings: int,
                   ) -> tuple[int, int]:
    """surveys.yaml's problems (post-call surveys), its queues against the menus'."""
    from ivr.menu.model import QueueNode  # noqa: PLC0415
    from ivr.surveys.checks import check_surveys  # noqa: PLC0415

    queues = {node.queue for _f, lm, _p in parsed if lm is not None
              for node in lm.menu.nodes.values() if isinstance(node, QueueNode)}
    lines, more_errors, more_warnings = check_surveys(settings.surveys_file, queues)
    for line in lines:
        print(line)
    return errors + more_errors, warnings + more_warnings


def _menus_schema(output: Path | None) -> int:
    from ivr.menu.model import menu_json_schema  # noqa: PLC0415

    text = json.dumps(menu_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _check_menus_servable(settings: Settings) -> None:
    """Refuse to start (exit 1, before touching the database) when no call could be answered:
    the entry menu does not load (or no menu does). Each file's problems go to stderr first.
    Another broken file does not stop the start: the lifespan logs it, /admin/menus reports
    it, and the valid menus are served."""
    from ivr.menu.bundle import load_directory  # noqa: PLC0415

    bundle, report = load_directory(settings.menus_dir, settings.entry_menu)
    if bundle is None:
        for p in report.problems:
            print(p, file=sys.stderr)
        raise UserError(f"the server cannot start: {report.fatal}")
    _check_callbacks_file(settings)
    _check_surveys_file(settings)


def _check_callbacks_file(settings: Settings) -> None:
    """A callbacks.yaml with mistakes stops the start with file:line:col (a missing file
    only turns callbacks off, with a warning at start)."""
    from callbacks.policy import PolicyError, load_policies  # noqa: PLC0415

    if settings.callbacks_file.exists():
        try:
            load_policies(settings.callbacks_file)
        except PolicyError as exc:
            raise UserError(f"the server cannot start: {exc}") from None
    if settings.followups_file.exists():  # follow-ups (issue 17.2): the same rule
        from callbacks.followups.policy import load_policy  # noqa: PLC0415

        try:
            load_policy(settings.followups_file)
        except PolicyError as exc:
            raise UserError(f"the server cannot start: {exc}") from None


def _check_surveys_file(settings: Settings) -> None:
    """A surveys.yaml with mistakes stops the start with file:line:col (no file: no
    surveys)."""
    from ivr.surveys.policy import SurveyError, load_surveys  # noqa: PLC0415

    if settings.surveys_file.exists():
        try:
            load_surveys(settings.surveys_file)
        except SurveyError as exc:
            raise UserError(f"the server cannot start: {exc}") from None


def _serve(settings: Settings, host: str, port: int, workers: int) -> int:
    from ivr.core.migrate import upgrade  # noqa: PLC0415
    from ivr.core.server import serve  # noqa: PLC0415

    _check_menus_servable(settings)
    upgrade(settings.direct_database_url)
    _banner(settings, host, port)
    # uvicorn formats every access-log line before the logger drops it; skip the work when
    # the level would drop it anyway.
    access_log = settings.log_level.upper() in ("DEBUG", "INFO")
    # log_config=None: uvicorn's loggers propagate to the root handler ``main`` set up (the
    # same format, CallSid and masking); log_level still sets their levels.
    # proxy_headers=False: uvicorn would believe X-Forwarded-* from 127.0.0.1; the app's
    # ProxyHeaders believes them from IVR_TRUSTED_PROXIES only (ivr.core.proxies).
    # serve: uvicorn with a deadline for each request's headers (IVR_HEADER_TIMEOUT_SECONDS)
    # and a cap on their size (ivr.core.server): a client that stalls mid-header is cut off.
    bounds: dict[str, Any] = {"header_timeout": settings.header_timeout_seconds,
                              "max_header_bytes": settings.max_header_bytes}
    if workers > 1:
        os.environ["IVR_PORT"] = str(port)  # the workers' settings: where they are served
        if settings.is_sqlite:
            print("warning: several workers on SQLite serialise on one file; use PostgreSQL",
                  file=sys.stderr)
        started = serve("ivr.app:app_from_env", factory=True, host=host, port=port,
                        workers=workers, log_level=settings.log_level.lower(),
                        log_config=None, access_log=access_log,
                        timeout_graceful_shutdown=SHUTDOWN_GRACE, proxy_headers=False,
                        **bounds)
    else:
        from ivr.app import create_app  # noqa: PLC0415

        started = serve(create_app(settings, local_url=f"http://{host}:{port}"), host=host,
                        port=port, log_config=None,
                        log_level=settings.log_level.lower(), access_log=access_log,
                        timeout_graceful_shutdown=SHUTDOWN_GRACE, proxy_headers=False,
                        **bounds)
    return EXIT_OK if started else EXIT_INTERNAL


def demo_hours_note(settings: Settings) -> str | None:
    """The start-up line about IVR_DEMO_ALWAYS_OPEN: in effect, or ignored and why."""
    if settings.open_at_any_hour:
        return "demo: the centre is open at any hour (IVR_DEMO_ALWAYS_OPEN)"
    ignored = settings.demo_always_open_ignored
    if ignored:
        return (f"warning: IVR_DEMO_ALWAYS_OPEN is ignored: {ignored} (a demo-only setting; "
                "the centre keeps its hours)")
    return None


def _banner(settings: Settings, host: str, port: int) -> None:
    """Where the server is, before uvicorn's own lines."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    base = f"http://{shown}:{port}"
    print(f"serving {base} (Twilio: {base}/twilio/voice); the agent console: {base}/agent/",
          flush=True)
    note = demo_hours_note(settings)
    if note:
        print(note, flush=True)
        if note.startswith("warning"):
            logging.getLogger("ivr").warning("%s", note)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    import httpx  # noqa: PLC0415

    from ivr.simulator.agents import AgentRefused  # noqa: PLC0415
    from ivr.simulator.caller import TwimlRejected  # noqa: PLC0415
    from ivr.simulator.terminal import simulate  # noqa: PLC0415

    opts = _simulate_options(settings, args)
    with httpx.Client(base_url=opts.url, timeout=TWILIO_TIMEOUT) as client:
        try:
            simulate(opts, client)
        except TwimlRejected as exc:
            print(f"error: Twilio would reject the server's answer: {exc}", file=sys.stderr)
            return EXIT_INTERNAL
        except AgentRefused as exc:
            raise UserError(f"the server refused an agent's step: {exc}") from None
        except httpx.ConnectError:
            raise UserError(f"no server at {opts.url} — start one with ./run.sh, or pass "
                            "--url") from None
        except httpx.HTTPError as exc:
            raise UserError(f"cannot reach {opts.url}: {exc}") from None
    return EXIT_OK


def _simulate_options(settings: Settings, args: argparse.Namespace) -> Any:
    """The command line's options, checked, with the defaults ``--as-agent`` implies (the
    caller waits for the agent, who answers)."""
    from ivr.simulator.agents import TransferPlan, second_agent  # noqa: PLC0415
    from ivr.simulator.terminal import Options  # noqa: PLC0415

    token = settings.twilio_auth_token.get_secret_value()
    if not token:
        raise UserError("IVR_TWILIO_AUTH_TOKEN is not set (the simulator signs with it, as "
                        "Twilio does); use the same value as the server")
    if args.speed <= 0:
        raise UserError("--speed must be positive")
    agent = args.as_agent
    for flag, value in (("--transfer", args.transfer), ("--second-agent", args.second_agent)):
        if value and not agent:
            raise UserError(f"{flag} needs --as-agent (the agent who has the call)")
    plan = None
    if args.transfer:
        try:
            plan = TransferPlan.parse(args.transfer, mode=args.transfer_mode,
                                      after=args.transfer_after, note=args.transfer_note,
                                      then=args.warm_then)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    elif args.transfer_mode or args.warm_then or args.transfer_note:
        raise UserError("--transfer-mode, --warm-then and --transfer-note need --transfer")
    if agent:
        try:
            second_agent(agent, plan, args.second_agent)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    talk = args.talk if args.talk is not None else (plan.after + 30 if plan else 5)
    if plan is not None and talk <= plan.after:
        raise UserError(f"--talk {talk:g} is not longer than --transfer-after "
                        f"{plan.after:g}: the call would end before the transfer")
    password = settings.demo_agent_password.get_secret_value()
    if agent and not password:
        raise UserError("--as-agent signs the agents in with IVR_DEMO_AGENT_PASSWORD (the "
                        "demo agents' password, in .env after ./run.sh); it is not set")
    return Options(
        url=args.url or f"http://127.0.0.1:{settings.port}", token=token,
        from_number=args.from_number, to_number=args.to_number, press=args.press,
        dial_status=args.dial_status or ("completed" if agent else "no-answer"),
        queue_result=args.queue_result,
        wait_for_agent=(args.wait_for_agent if args.wait_for_agent is not None
                        else 60 if agent else 0),
        talk=talk, accept_callback=args.accept_callback, speed=args.speed, as_agent=agent,
        second_agent=args.second_agent, plan=plan, password=password)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from callbacks.policy import PolicyError  # noqa: PLC0415
    from crm_sync.mapping import MappingError  # noqa: PLC0415
    from ivr.core.clock import SystemClock  # noqa: PLC0415
    from ivr.core.db import settings_engine  # noqa: PLC0415
    from ivr.core.migrate import upgrade  # noqa: PLC0415
    from ivr.worker import Worker, build_jobs  # noqa: PLC0415

    upgrade(settings.direct_database_url)
    note = demo_hours_note(settings)
    if note:
        logging.getLogger("ivr.worker").log(
            logging.WARNING if note.startswith("warning") else logging.INFO, "%s", note)
    engine = settings_engine(settings, 4)
    clock = SystemClock()
    worker = Worker([], clock)
    closing: list[Any] = []
    try:
        try:
            worker.jobs, closing = build_jobs(
                engine, settings, clock, sleep=worker.sleep, stop=worker.stopping.is_set,
                sync=not args.no_sync, outbox=not args.no_outbox,
                callbacks=not args.no_callbacks, reports=not args.no_reports,
                followups=not args.no_followups)
        except (MappingError, PolicyError) as exc:  # source, subscriber, callbacks files
            raise UserError(str(exc)) from None
        if not [j for j in worker.jobs if j.name != "reports"]:  # a rollup alone: idle
            raise UserError(f"nothing to do: no source in {settings.crm_dir / 'sources'}, "
                            f"no active subscriber in "
                            f"{settings.crm_dir / 'subscribers.yaml'} and no callbacks "
                            f"({settings.callbacks_file})")
        logging.getLogger("ivr.worker").info(
            "worker: %s", ", ".join(f"{j.name} every {j.every:g} s" for j in worker.jobs))
        with worker.signals():
            worker.run(max_ticks=1 if args.once else None)
    finally:
        for resource in closing:
            resource.close()
        engine.dispose()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="IVR call router for Twilio")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run migrations, then the webhook server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, help="default IVR_PORT (8000)")
    serve.add_argument("--workers", type=int, default=1)

    sub.add_parser("migrate", help="bring the database schema to the latest version")

    menus = sub.add_parser("menus", help="menu files").add_subparsers(dest="menus_cmd",
                                                                       required=True)
    check = menus.add_parser("check", help="check menu files (exit 1 on errors)")
    check.add_argument("path", nargs="?", type=Path)
    check.add_argument("--caller-time", action="store_true",
                       help="print the seconds of speech before each queue, transfer and "
                       "hang-up (printed anyway when a menu sets caller_time)")
    schema = menus.add_parser("schema", help="print the JSON Schema of menu files")
    schema.add_argument("-o", "--output", type=Path)

    sim = sub.add_parser("simulate", help="play a phone call against a running server")
    sim.add_argument("--url", help="the server (default http://127.0.0.1:IVR_PORT, "
                     "IVR_PORT from the environment or .env, else 8000)")
    sim.add_argument("--from", dest="from_number", default="+972501234567")
    sim.add_argument("--to", dest="to_number", default="+97235550100")
    sim.add_argument("--press", help="scripted input, e.g. '1,2' ('' = silence, "
                     "'say:words' = speech); without it you type at the prompt")
    sim.add_argument("--dial-status",
                     choices=["completed", "busy", "no-answer", "failed", "canceled"],
                     help="how a dialled agent answers (default no-answer; completed with "
                          "--as-agent)")
    sim.add_argument("--queue-result", default="hangup",
                     choices=["bridged", "hangup", "queue-full", "error", "leave"])
    sim.add_argument("--wait-for-agent", type=float, metavar="SECONDS",
                     help="stay in a queue this long, until an available agent takes the "
                     "call (use with --dial-status completed: the agent answers; default 0, "
                     "60 with --as-agent)")
    sim.add_argument("--accept-callback", action="store_true",
                     help="press 1 at the wait loop's callback offer (then --press goes on "
                          "with the callback dialog: 1 confirms the number)")
    sim.add_argument("--talk", type=float, metavar="SECONDS",
                     help="how long an answered agent leg lasts (on a conference: how long "
                          "the caller stays in it, held or not; default 5, with --transfer "
                          "30 more than --transfer-after)")
    sim.add_argument("--speed", type=float, default=1, metavar="FACTOR",
                     help="play the call's waiting and talking this many times faster "
                          "(what Twilio would post is unchanged: at 10 a 5 s pause takes "
                          "0.5 s and still counts 5 s of QueueTime)")
    agents = sim.add_argument_group(
        "the agents' side", "play the console too (signs in with IVR_DEMO_AGENT_PASSWORD): "
        "the agent takes the call and, with --transfer, transfers it")
    agents.add_argument("--as-agent", metavar="USER",
                        help="this agent signs in, goes available and takes the call")
    agents.add_argument("--transfer", metavar="KIND:TARGET",
                        help="queue:NAME, agent:USER or external:NAME (of "
                             "IVR_TRANSFER_NUMBERS)")
    agents.add_argument("--transfer-mode", choices=["cold", "warm"],
                        help="cold (default): hand over at once; warm: talk to them first, "
                             "the caller on hold")
    agents.add_argument("--transfer-after", type=float, default=5, metavar="SECONDS",
                        help="seconds of conversation before the transfer (default 5)")
    agents.add_argument("--transfer-note", metavar="TEXT",
                        help="the note the next person's screen-pop shows")
    agents.add_argument("--warm-then", choices=["handover", "join", "cancel"],
                        help="once the new party answers a warm transfer: hand over "
                             "(default), join all three, or cancel (the caller comes back)")
    agents.add_argument("--second-agent", metavar="USER",
                        help="sign this agent in too, available once the caller is with the "
                             "first: takes a queue transfer (agent:USER signs USER in)")
    worker = sub.add_parser("worker", help="background jobs: CRM sync per source, outbox "
                            "delivery (SIGTERM/SIGINT stop it cleanly)")
    worker.add_argument("--once", action="store_true", help="run every job once, then exit")
    worker.add_argument("--no-sync", action="store_true", help="no CRM pulls")
    worker.add_argument("--no-outbox", action="store_true", help="no outbox delivery")
    worker.add_argument("--no-callbacks", action="store_true",
                        help="no callback dispatch (timers, dialling)")
    worker.add_argument("--no-followups", action="store_true",
                        help="no follow-ups job (satisfaction calls, promises, SMS)")
    worker.add_argument("--no-reports", action="store_true",
                        help="no rollup of the reports' finished days")
    from callbacks import cli as callbacks_cli  # noqa: PLC0415
    from crm_sync import cli as crm_cli  # noqa: PLC0415
    from ivr.agents import cli as agents_cli  # noqa: PLC0415
    from ivr.auth import cli as tokens_cli  # noqa: PLC0415
    from ivr.reports import cli as reports_cli  # noqa: PLC0415

    crm_cli.add_parser(sub)
    agents_cli.add_parser(sub)
    tokens_cli.add_parser(sub)
    callbacks_cli.add_parser(sub)
    from callbacks.followups import cli as followups_cli  # noqa: PLC0415

    followups_cli.add_parser(sub)
    from ivr.retention import cli as retention_cli  # noqa: PLC0415

    retention_cli.add_parser(sub)
    reports_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        from ivr.core.logging import configure  # noqa: PLC0415
        from ivr.observability.metrics import redactor  # noqa: PLC0415

        configure(settings, redactor(settings.default_region))
        if args.command != "migrate":  # Alembic's INFO lines are for `ivr migrate` only
            logging.getLogger("alembic").setLevel(logging.WARNING)
        if args.command == "serve":
            return _serve(settings, args.host, args.port or settings.port, args.workers)
        if args.command == "migrate":
            from ivr.core.migrate import upgrade  # noqa: PLC0415

            upgrade(settings.direct_database_url)
            return EXIT_OK
        if args.command == "menus":
            if args.menus_cmd == "check":
                return _menus_check(settings, args.path, args.caller_time)
            return _menus_schema(args.output)
        if args.command == "simulate":
            return _simulate(settings, args)
        if args.command == "worker":
            return _worker(settings, args)
        if args.command == "agents":
            from ivr.agents import cli as agents_cli  # noqa: PLC0415

            return agents_cli.run(settings, args)
        if args.command == "crm":
            from crm_sync import cli as crm_cli  # noqa: PLC0415

            return crm_cli.run(settings, args)
        if args.command == "callbacks":
            from callbacks import cli as callbacks_cli  # noqa: PLC0415

            return callbacks_cli.run(settings, args)
        if args.command == "followups":
            from callbacks.followups import cli as followups_cli  # noqa: PLC0415

            return followups_cli.run(settings, args)
        if args.command == "reports":
            from ivr.reports import cli as reports_cli  # noqa: PLC0415

            return reports_cli.run(settings, args)
        if args.command == "tokens":
            from ivr.auth import cli as tokens_cli  # noqa: PLC0415

            return tokens_cli.run(settings, args)
        if args.command == "retention":
            from ivr.retention import cli as retention_cli  # noqa: PLC0415

            return retention_cli.run(settings, args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("ivr").exception("internal error")
        print(f"internal error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
