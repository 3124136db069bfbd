"""``ivr agents``: add agents and supervisors, list them, set passwords, demo accounts.

Passwords are read from standard input (``--password-stdin``) or an environment variable
(``--password-env NAME``), never from the command line (it would stay in shell history
and in the process list).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from ivr.agents import repository as repo
from ivr.agents.models import agents
from ivr.core.clock import Clock, SystemClock
from ivr.core.db import settings_engine
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings

EXIT_OK, EXIT_USER = 0, 1


class AgentsUserError(Exception):
    pass


def add_parser(sub: Any) -> None:
    p = sub.add_parser("agents", help="agents and supervisors of the console")
    cmds = p.add_subparsers(dest="agents_cmd", required=True)
    add = cmds.add_parser("add", help="add an agent (password from stdin or a variable)")
    add.add_argument("username")
    add.add_argument("--name", required=True)
    add.add_argument("--queues", default="", help="comma-separated queue names")
    add.add_argument("--role", choices=repo.ROLES, default="agent")
    add.add_argument("--team")
    add.add_argument("--language", choices=("en", "he"),
                     help="the console's language (default: IVR_INTERFACE_LANGUAGE)")
    reach = add.add_mutually_exclusive_group()
    reach.add_argument("--client", help="Twilio Client identity (default: the username)")
    reach.add_argument("--number", help="a phone number to ring (E.164)")
    reach.add_argument("--sip", help="a SIP URI to ring")
    _password_args(add)
    passwd = cmds.add_parser("passwd", help="set an agent's password")
    passwd.add_argument("username")
    _password_args(passwd)
    lst = cmds.add_parser("list", help="agents, their queues and states")
    lst.add_argument("--json", action="store_true")
    demo = cmds.add_parser("demo", help="the demo's agents 'noa' and 'avi' and supervisor "
                           "'rivka', those not there yet (password: IVR_DEMO_AGENT_PASSWORD)")
    demo.add_argument("--if-empty", action="store_true",
                      help="only if there are no agents but the demo's")


def _password_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--password-stdin", action="store_true")
    g.add_argument("--password-env", metavar="NAME")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        value = sys.stdin.readline().rstrip("\n")
    else:
        value = os.environ.get(args.password_env, "")
        if not value:
            raise AgentsUserError(f"environment variable {args.password_env} is empty")
    if len(value) < 8:
        raise AgentsUserError("a password needs at least 8 characters")
    return value


def _menu_queues(settings: Settings) -> list[str]:
    from ivr.menu.bundle import assemble  # noqa: PLC0415
    from ivr.menu.loader import load_menu_file, menu_files  # noqa: PLC0415
    from ivr.menu.model import QueueNode  # noqa: PLC0415

    files = menu_files(settings.menus_dir) if settings.menus_dir.is_dir() else []
    bundle, _report = assemble([(f, *load_menu_file(f)) for f in files], None,
                               settings.entry_menu)
    names = {settings.safe_queue}
    if bundle is not None:
        for loaded in bundle.menus.values():
            names.update(n.queue for n in loaded.menu.nodes.values()
                         if isinstance(n, QueueNode))
    return sorted(names)


def run(settings: Settings, args: argparse.Namespace, clock: Clock | None = None) -> int:
    clock = clock or SystemClock()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(settings.direct_database_url)
    engine = settings_engine(settings, 2)
    try:
        return _dispatch(engine, settings, args, clock)
    except AgentsUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    finally:
        engine.dispose()


def _dispatch(engine: Engine, settings: Settings, args: argparse.Namespace,
              clock: Clock) -> int:
    now = clock.now()
    cmd = args.agents_cmd
    if cmd == "add":
        kind, target = "client", args.client or args.username
        if args.number:
            from crm_sync.phones import normalize  # noqa: PLC0415

            e164 = normalize(args.number, settings.default_region).e164
            if e164 is None:
                raise AgentsUserError(f"{args.number!r} is not a phone number")
            kind, target = "number", e164
        elif args.sip:
            kind, target = "sip", args.sip
        queues = [q.strip() for q in args.queues.split(",") if q.strip()]
        password = _password(args)
        try:
            with engine.begin() as conn:
                agent_id = repo.create_agent(
                    conn, username=args.username, name=args.name, password=password,
                    role=args.role, queues=queues, reach_kind=kind, reach_target=target,
                    team=args.team, language=args.language, now=now)
        except IntegrityError:
            raise AgentsUserError(f"an agent {args.username!r} exists already") from None
        print(f"agent #{agent_id} {args.username} ({args.role}): {kind} {target}; "
              f"queues: {', '.join(queues) or '-'}")
        return EXIT_OK
    if cmd == "passwd":
        password = _password(args)
        with engine.begin() as conn:
            if not repo.set_password(conn, args.username, password, now):
                raise AgentsUserError(f"no agent {args.username!r}")
        print(f"password of {args.username} changed")
        return EXIT_OK
    if cmd == "list":
        with engine.connect() as conn:
            rows = repo.list_agents(conn)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            for r in rows:
                print(f"{r['username']:<16} {r['role']:<6} {r['state']:<10} "
                      f"{r['reach_kind']}:{r['reach_target']:<20} {', '.join(r['queues'])}")
        return EXIT_OK
    return _demo(engine, settings, args.if_empty, now)


#: The demo's people: Noa answers every queue of the menus; Avi only retention (whom Noa
#: transfers a caller who wants to leave, README "Transfers": no other demo call, callback
#: or follow-up waits there, so the transfer is what he takes); Rivka supervises.
DEMO_AGENTS: tuple[tuple[str, str, str, list[str] | None], ...] = (
    ("noa", "נועה מזרחי", "agent", None),
    ("avi", "Avi Ben-David", "agent", ["retention"]),
    ("rivka", "Rivka (supervisor)", "admin", []))


def _demo(engine: Engine, settings: Settings, if_empty: bool, now: Any) -> int:
    """The demo agents not there yet (a demo database from before Avi gains him);
    ``if_empty``: nothing when the centre has agents of its own."""
    password = settings.demo_agent_password.get_secret_value()
    if not password:
        raise AgentsUserError("IVR_DEMO_AGENT_PASSWORD is not set")
    demo = [username for username, *_ in DEMO_AGENTS]
    with engine.begin() as conn:
        if if_empty and conn.execute(select(func.count()).select_from(agents).where(
                agents.c.username.not_in(demo))).scalar():
            return EXIT_OK
        there = set(conn.execute(select(agents.c.username).where(
            agents.c.username.in_(demo))).scalars())
        everything = _menu_queues(settings)
        added = []
        for username, name, role, only in DEMO_AGENTS:
            if username in there:
                continue
            queues = everything if only is None else only
            repo.create_agent(conn, username=username, name=name, password=password,
                              role=role, queues=queues, reach_target=username, now=now)
            added.append(f"{username} (supervisor)" if role == "admin"
                         else f"{username} (queues {', '.join(queues)})")
    if added:
        print(f"demo agents: {'; '.join(added)}; password in .env "
              "(IVR_DEMO_AGENT_PASSWORD); console at /agent/")
    return EXIT_OK
