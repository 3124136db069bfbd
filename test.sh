#!/usr/bin/env bash
# Every check, from a fresh clone: creates .venv, installs the project with its dev tools,
# then lint (ruff), types (mypy), the demo menus check, and the test suite on SQLite and
# PostgreSQL (IVR_TEST_DATABASES=sqlite for a quick SQLite-only run), and Debian's Chromium
# for the console's browser test when it is missing.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# The agent console's browser test drives Debian's Chromium (Playwright never downloads a
# browser), with a font that has Hebrew: installed once when missing (as root; otherwise
# run `apt-get install -y chromium fonts-dejavu-core pgbouncer`). A failed install fails the run.
# PgBouncer: tests/test_pgbouncer.py runs the PostgreSQL webhook and routing cases through one.
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/sbin/pgbouncer ]; } && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null; then
  echo "Chromium or PgBouncer is missing; installing them" \
       "(apt-get install -y chromium fonts-dejavu-core pgbouncer)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q chromium fonts-dejavu-core pgbouncer
  [ -x /usr/bin/chromium ] || { echo "apt-get installed no /usr/bin/chromium" >&2; exit 1; }
  [ -x /usr/sbin/pgbouncer ] || { echo "apt-get installed no /usr/sbin/pgbouncer" >&2; exit 1; }
fi
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy ivr crm_sync callbacks tests bench
echo "== ivr menus check"
.venv/bin/ivr menus check menus
# Two pytest workers (pytest-xdist), a test file each at a time (--dist loadfile: a file's
# servers and browsers start once): the suite's wall time stays within ~20 minutes on two
# cores. IVR_TEST_WORKERS=0 runs it in this one process.
echo "== pytest (databases: ${IVR_TEST_DATABASES:-sqlite,postgresql}, workers: ${IVR_TEST_WORKERS:-2})"
.venv/bin/python -m pytest -n "${IVR_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder \
  --cov=ivr --cov=crm_sync --cov=callbacks --cov-report=term:skip-covered --cov-fail-under=90 "$@"
