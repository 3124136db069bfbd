"""A pytest plugin for mutation runs only (``tests/mutation.sh`` loads it with ``-p``).

Hypothesis without deadlines (mutmut's trampolines slow every call, and a missed deadline
would count a mutant as killed) and with fixed examples and no example database (the same
mutant gets the same verdict on every run)."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("mutation", deadline=None, derandomize=True, database=None)
settings.load_profile("mutation")
