#!/usr/bin/env bash
# Runs the product on its embedded defaults: SQLite (./ivr.db), the demo menus (./menus),
# on http://127.0.0.1:8000. Creates .venv and a demo .env (tokens the server and
# `ivr simulate` share) on first use. Extra arguments go to `ivr serve`.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -e .
if [ ! -f .env ]; then
  token=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')
  admin=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')
  printf 'IVR_TWILIO_AUTH_TOKEN=%s\nIVR_ADMIN_TOKEN=%s\n' "$token" "$admin" > .env
  echo "wrote .env with demo tokens (IVR_TWILIO_AUTH_TOKEN, IVR_ADMIN_TOKEN)"
fi
# A small synthetic customer store, so the demo recognises callers (once; see
# `ivr crm demo-data --help`).
.venv/bin/ivr crm demo-data --customers 200 --if-empty
exec .venv/bin/ivr serve "$@"
