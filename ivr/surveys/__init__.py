"""Post-call surveys (CSAT, issue 17.1): after the agent hangs up, a caller who stayed on the
line rates the call by key or by voice; low scores alert supervisors and open follow-ups."""
