"""Callbacks: callback requests, their SLA policy, the dispatcher.

So far the pure groundwork: the policy file (``policy``), the business calendar (``hours``)
and the SLA maths (``sla``). Imports ``ivr.core`` only (see ARCHITECTURE.md).
"""
