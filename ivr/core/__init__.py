"""The shared core: settings, database, clock.

Nothing in here imports from the rest of ``ivr``; feature packages (``ivr.menu``,
``ivr.calls``, later ``crm_sync`` and ``callbacks``) import from here.
"""
