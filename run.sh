#!/usr/bin/env bash
# Runs the product on its embedded defaults: SQLite (./ivr.db), the demo menus (./menus),
# on http://127.0.0.1:8000 (IVR_PORT in .env, or --port, for another port; `ivr serve`
# prints where it listens). Creates .venv and a demo .env (tokens the server and
# `ivr simulate` share, the demo agents' password, the demo open at any hour) on first
# use. Extra arguments go to `ivr serve`.
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
if ! grep -q '^IVR_DEMO_AGENT_PASSWORD=' .env; then
  pw=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(9))')
  printf 'IVR_DEMO_AGENT_PASSWORD=%s\n' "$pw" >> .env
  echo "demo agents: sign in to the agent console (its address is printed below) as noa or" \
       "avi (agents) or rivka (supervisor), password $pw (IVR_DEMO_AGENT_PASSWORD in .env)"
fi
# The demo centre is open at any hour (set false in .env to see its office hours). It takes
# effect only on SQLite without a Twilio account SID: never in production.
if ! grep -q '^IVR_DEMO_ALWAYS_OPEN=' .env; then
  printf 'IVR_DEMO_ALWAYS_OPEN=true\n' >> .env
fi
# A small synthetic customer store, so the demo recognises callers (once; see
# `ivr crm demo-data --help`), and the demo's agent and supervisor.
.venv/bin/ivr crm demo-data --customers 200 --if-empty
.venv/bin/ivr agents demo --if-empty
exec .venv/bin/ivr serve "$@"
