#!/usr/bin/env bash
# Every check, from a fresh clone: creates .venv, installs the project with its dev tools,
# then lint (ruff), types (mypy), the demo menus check, and the test suite on SQLite and
# PostgreSQL (IVR_TEST_DATABASES=sqlite for a quick SQLite-only run).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy ivr crm_sync callbacks tests bench
echo "== ivr menus check"
.venv/bin/ivr menus check menus
echo "== pytest (databases: ${IVR_TEST_DATABASES:-sqlite,postgresql})"
.venv/bin/python -m pytest --cov=ivr --cov=crm_sync --cov=callbacks --cov-report=term:skip-covered --cov-fail-under=90 "$@"
