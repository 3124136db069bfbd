"""The retention feature's use cases: the wrap-up lists in use, the exit interview a
wrap-up records, and the leaving-risk signal of the pop.

``RetentionService`` is what ``ivr.agents`` asks through its ``WrapUpCheck`` port
(``ivr.services`` plugs it in): a wrap-up's leaving reason must be a code of the admin's list
(``other`` needs the customer's words), the interview is written in the wrap-up's own
transaction, and the pop's ``leaving_risk`` is ``ivr.retention.signals`` with the weights of
``wrapup.yaml``. It never commits: the caller's transaction does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from crm_sync.wrapup import CallFacts, WrapUp
from ivr.retention import repository
from ivr.retention.config import OTHER, LiveLists, WrapUpLists
from ivr.retention.signals import LeavingRisk, leaving_risk

MAX_TEXT = 500


def ivr_leaving_reason(path: list[dict[str, Any]]) -> str | None:
    """The leaving reason the caller chose in the IVR (the last one on the call's path)."""
    return next((str(p["leaving_reason"]) for p in reversed(path)
                 if p.get("leaving_reason")), None)


class RetentionService:
    def __init__(self, lists: LiveLists) -> None:
        self.live = lists

    @classmethod
    def from_file(cls, path: Path | None) -> RetentionService:
        return cls(LiveLists(path))

    @property
    def lists(self) -> WrapUpLists:
        return self.live.current()

    # ------------------------------------------------------------ the wrap-up

    def refuse(self, wrap: WrapUp) -> str | None:
        """Why a wrap-up's exit interview cannot be recorded as sent (None: it can)."""
        if not wrap.leaving_reason:
            if wrap.leaving_text or wrap.stayed is not None:
                return "leaving_reason: say why the customer may leave (or leave out " \
                       "leaving_text and stayed)"
            return None
        lists = self.lists
        if lists.reason(wrap.leaving_reason) is None:
            codes = ", ".join(r.code for r in lists.leaving_reasons)
            return (f"leaving_reason: {wrap.leaving_reason!r} is not on the list of leaving "
                    f"reasons; expected one of: {codes}")
        if wrap.leaving_reason == OTHER and not (wrap.leaving_text or "").strip():
            return "leaving_text: say in words why the customer may leave"
        if wrap.leaving_text and len(wrap.leaving_text) > MAX_TEXT:
            return f"leaving_text: at most {MAX_TEXT} characters"
        return None

    def record(self, conn: Connection, facts: CallFacts, wrap: WrapUp, interaction_id: int,
               now: datetime) -> None:
        """The exit interview of a wrap-up with a leaving reason, with the customer's
        profile at this moment (in the wrap-up's transaction). A wrap-up without one, of a
        call whose caller gave a reason in the IVR (a menu option's ``leaving_reason``), records
        the IVR's answer instead (source ``ivr``, outcome not known yet)."""
        if not wrap.leaving_reason:
            code = ivr_leaving_reason(facts.ivr_path)
            if code is not None and self.lists.reason(code) is not None:
                repository.record_interview(
                    conn, customer_id=facts.customer_id, call_sid=facts.call_sid,
                    interaction_id=interaction_id, source="ivr", queue=facts.queue,
                    agent=facts.agent, reason=code, reason_text=None, stayed=None,
                    branch=facts.branch, now=now)
            return
        repository.record_interview(
            conn, customer_id=facts.customer_id, call_sid=facts.call_sid,
            interaction_id=interaction_id, source="wrapup", queue=facts.queue,
            agent=facts.agent, reason=wrap.leaving_reason,
            reason_text=(wrap.leaving_text or "").strip() or None, stayed=wrap.stayed,
            branch=facts.branch, now=now)

    # ------------------------------------------------------------ the pop

    def risk(self, conn: Connection, customer_id: int, now: datetime, *,
             chose: list[str] | tuple[str, ...] = ()) -> LeavingRisk:
        """The customer's leaving-risk signal with the live weights."""
        return leaving_risk(conn, customer_id, now, policy=self.lists.leaving_risk,
                            chose_queues=chose)

    def pop_risk(self, conn: Connection, customer_id: int | None, chose: list[str],
                 now: datetime, found: dict[str, Any]) -> dict[str, Any]:
        """The pop's ``leaving_risk``: this feature's signal (``found``, the store's own
        reasons, is replaced: every one of them is among the signals)."""
        if customer_id is None:
            reasons = [f"chose '{q}' in the IVR (e.g. cancel my service)" for q in chose]
            weight = self.lists.leaving_risk.weights.chose_queue * len(chose)
            return {"flag": weight >= self.lists.leaving_risk.threshold and bool(chose),
                    "score": weight, "reasons": reasons}
        return self.risk(conn, customer_id, now, chose=chose).as_dict()
