#!/usr/bin/env bash
# Mutation testing of the pure cores (the menu engine, SLA maths, identity resolution, the
# routing plan) with mutmut 3: every mutant of those four modules is run against their fast
# unit tests only (no database; the list and the pytest options are [tool.mutmut] in
# pyproject.toml). About 15-20 minutes on 2 cores. Prints, per module, how many mutants were
# killed, survived or timed out, then the survivors; `.venv/bin/mutmut show NAME` prints a
# survivor's diff.
#
#   tests/mutation.sh                 # a fresh run (removes mutants/ first)
#   MUTATION_KEEP=1 tests/mutation.sh # reuse mutants/: only changed functions are rerun
#   MUTATION_JOBS=1 tests/mutation.sh # fewer worker processes (default 2)
#
# mutants/ (mutmut's copy of the sources and its results) is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/mutmut ]; then
  echo "mutmut is missing: .venv/bin/python -m pip install -e '.[dev]'" >&2
  exit 1
fi
export IVR_TEST_DATABASES=sqlite
if [ "${MUTATION_KEEP:-0}" != 1 ]; then
  rm -rf mutants
fi
mkdir -p mutants
log=mutants/mutmut-run.log
# mutmut redraws its progress line hundreds of times: the log keeps it, we print the end.
if ! .venv/bin/mutmut run --max-children "${MUTATION_JOBS:-2}" >"$log" 2>&1; then
  tr '\r' '\n' <"$log" | tail -n 40
  echo "mutmut run failed (full output: $log)" >&2
  exit 1
fi
tr '\r' '\n' <"$log" | grep -v '^\s*$' | tail -n 2
.venv/bin/python - <<'PY'
import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

survivors = []
print(f"{'module':28} {'total':>6} {'killed':>7} {'survived':>9} {'timeout':>8} {'other':>6}")
for meta in sorted(Path("mutants").rglob("*.py.meta")):
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    counts = Counter(status_by_exit_code[code] for code in codes.values())
    other = len(codes) - counts["killed"] - counts["survived"] - counts["timeout"]
    module = str(meta.relative_to("mutants")).removesuffix(".meta")
    print(f"{module:28} {len(codes):6} {counts['killed']:7} {counts['survived']:9} "
          f"{counts['timeout']:8} {other:6}")
    survivors += [f"{name}: {status_by_exit_code[code]}" for name, code in codes.items()
                  if status_by_exit_code[code] not in ("killed", "timeout")]
print("(other: no selected test reaches the mutant, or it was not checked)")
print(f"\nnot killed ({len(survivors)}):")
for name in survivors:
    print(" ", name)
PY
