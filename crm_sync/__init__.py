"""The shared customer store: one golden record per real person, every source record kept.

Imports flow one way: ``ivr`` (web, CLI) -> ``crm_sync`` -> ``ivr.core``.
"""
