"""``ivr tokens``: API tokens for the admin API, CRM pushes and /metrics (``ivr.api_tokens``).

``create`` prints the new token once, alone on standard output (``T=$(ivr tokens create
...)``); only its SHA-256 is stored, so a lost token is revoked and replaced, never shown
again. ``list`` never shows tokens.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from ivr.auth import tokens as api_tokens
from ivr.core.clock import Clock, SystemClock
from ivr.core.db import settings_engine
from ivr.core.migrate import upgrade
from ivr.core.settings import Settings

EXIT_OK, EXIT_USER = 0, 1
ROLE_HELP = ("admin: /admin/*, /crm/customers, CRM pushes, /metrics; integration: CRM pushes "
             "(POST /crm/sources/{source}/records) only; metrics: GET /metrics only")


class TokensUserError(Exception):
    pass


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tokens", help="API tokens by role (admin, integration, metrics)")
    cmds = p.add_subparsers(dest="tokens_cmd", required=True)
    create = cmds.add_parser("create", help="make a token; printed once, stored hashed",
                             description=ROLE_HELP)
    create.add_argument("--name", required=True, help="who or what uses it, e.g. prometheus")
    create.add_argument("--role", required=True, choices=api_tokens.ROLES)
    lst = cmds.add_parser("list", help="tokens by name: role, created, last used, revoked")
    lst.add_argument("--json", action="store_true")
    revoke = cmds.add_parser("revoke", help="refuse a token from now on")
    revoke.add_argument("name")


def run(settings: Settings, args: argparse.Namespace, clock: Clock | None = None) -> int:
    clock = clock or SystemClock()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(settings.direct_database_url)
    engine = settings_engine(settings, 2)
    try:
        return _dispatch(engine, args, clock)
    except TokensUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    finally:
        engine.dispose()


def _dispatch(engine: Engine, args: argparse.Namespace, clock: Clock) -> int:
    now = clock.now()
    cmd = args.tokens_cmd
    if cmd == "create":
        name = args.name.strip()
        if not name or len(name) > 64:
            raise TokensUserError("a token's name needs 1 to 64 characters")
        try:
            with engine.begin() as conn:
                token = api_tokens.create(conn, name, args.role, now)
        except IntegrityError:
            raise TokensUserError(f"a token named {name!r} exists already (names stay taken "
                                  "after a revoke: choose another)") from None
        print(token)
        print(f"token {name!r} ({args.role}) created; it is shown only this once and stored "
              "hashed: keep it now", file=sys.stderr)
        return EXIT_OK
    if cmd == "list":
        with engine.connect() as conn:
            rows = api_tokens.list_tokens(conn)
        if args.json:
            print(json.dumps([r.as_dict() for r in rows], indent=2))
        else:
            for r in rows:
                used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never"
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(f"{r.name:<24} {r.role:<12} created {r.created_at:%Y-%m-%d %H:%M}  "
                      f"last used {used:<16} {state}")
        return EXIT_OK
    # revoke
    with engine.begin() as conn:
        done = api_tokens.revoke(conn, args.name, now)
    if done is None:
        raise TokensUserError(f"no token named {args.name!r}")
    print(f"token {args.name!r} {'revoked' if done else 'was revoked already'}")
    return EXIT_OK
