"""The promises agents make ("a technician will call you by Tuesday noon").

A promised action with a due time lives on an interaction (``promised_action``,
``promised_due_at``, ``promise_kept_at``: an agent's wrap-up or a source CRM). Each one is
taken up as a ``promises`` row with an owner (the agent who made it, found by name; else
the interaction's queue; else the policy's ``default_queue``), then, in the worker's sweep:

* ``warn_before`` its due time: a ``warning`` (the owner's console and the supervisors');
* due and not kept: ``broken`` (``broken_at``), escalated to the supervisor view and the
  escalation webhook;
* kept: by the wrap-up's ``kept_promises`` (the interaction's ``promise_kept_at``, picked
  up here) or by ``mark_kept`` (the console's / API's "kept" button, which also marks the
  interaction). A promise kept after it broke keeps its ``broken_at``: it was broken.

``broken_promises(conn, customer_id, since)`` is the query the leaving-risk signal reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from callbacks.followups import repository as frepo
from callbacks.followups import sms as smsmod
from callbacks.followups.policy import FollowUpPolicy
from crm_sync.models import interactions
from ivr.agents import repository as arepo
from ivr.agents.models import agents
from ivr.agents.ports import Outcome

SMS_RECENT = timedelta(hours=1)  # promises made this recently get the confirming SMS
Supervisors = Callable[[Connection, str, dict[str, Any], datetime, Outcome], None]


def broken_promises(conn: Connection, customer_id: int, since: datetime,
                    ) -> list[dict[str, Any]]:
    """A customer's promises broken at or after ``since`` (see ``repository``)."""
    return frepo.broken_promises(conn, customer_id, since)


class PromiseError(LookupError):
    pass


class PromiseDesk:
    def __init__(self, policy: FollowUpPolicy) -> None:
        self.policy = policy

    def _owner(self, conn: Connection, agent_name: str | None) -> int | None:
        if not agent_name:
            return None
        return conn.execute(select(agents.c.id).where(
            agents.c.name == agent_name, agents.c.active.is_(True))
            .order_by(agents.c.id).limit(1)).scalar()

    def take_up(self, conn: Connection, now: datetime) -> list[int]:
        """Promised actions not tracked yet become ``promises`` rows."""
        p = self.policy.promises
        created = []
        for r in frepo.promised_without_promise(conn, now - p.lookback):
            due = r.promised_due_at
            kept = r.promise_kept_at
            pid = frepo.create_promise(conn, {
                "interaction_id": r.id, "customer_id": r.customer_id,
                "action": r.promised_action, "due_at": due, "warn_at": due - p.warn_before,
                "owner_agent_id": self._owner(conn, r.agent),
                "owner_queue": r.queue or p.default_queue,
                "status": "kept" if kept is not None else "open", "kept_at": kept,
                "created_at": now, "updated_at": now})
            if pid is None:
                continue
            created.append(pid)
            frepo.add_event(conn, "promised", now, {"due_at": due.isoformat(),
                                                    "interaction_id": r.id},
                            promise_id=pid)
            # The time is confirmed for a promise just made (an import's old ones: no SMS).
            if self.policy.sms.promises and kept is None and due > now \
                    and r.started_at >= now - SMS_RECENT:
                phone, lang = frepo.customer_contact(conn, int(r.customer_id))
                if phone:
                    frepo.queue_sms(conn, "promise", pid, phone, smsmod.body(
                        "promise", due, self.policy.window.zone, lang or "he-IL",
                        r.promised_action), now)
        return created

    def _detail(self, row: Any, now: datetime) -> dict[str, Any]:
        return {"promise_id": row.id, "customer_id": row.customer_id, "action": row.action,
                "due_at": row.due_at.isoformat(),
                "seconds_left": int((row.due_at - now).total_seconds()),
                "owner_agent_id": row.owner_agent_id, "owner_queue": row.owner_queue}

    def sweep(self, conn: Connection, now: datetime, out: Outcome,
              supervisors: Supervisors) -> None:
        if not self.policy.promises.enabled:
            return
        self.take_up(conn, now)
        for r in frepo.promises_kept_in_store(conn):
            frepo.update_promise(conn, r.id, kept_at=r.promise_kept_at, kept_by="wrap-up",
                                 status="kept" if r.status == "open" else r.status,
                                 updated_at=now)
            frepo.add_event(conn, "kept", now, {"by": "wrap-up"}, promise_id=r.id)
        for r in frepo.promise_warnings_due(conn, now):
            frepo.update_promise(conn, r.id, warned_at=now, updated_at=now)
            detail = self._detail(r, now)
            frepo.add_event(conn, "warning", now, detail, promise_id=r.id)
            supervisors(conn, "promise_warning", detail, now, out)
            if r.owner_agent_id is not None:
                out.published.append((r.owner_agent_id, arepo.add_event(
                    conn, r.owner_agent_id, "followup", {"kind": "promise_warning", **detail},
                    now)))
        for r in frepo.promises_overdue(conn, now):
            if not frepo.update_promise(conn, r.id, only_status=("open",), status="broken",
                                        broken_at=now, updated_at=now):
                continue
            detail = self._detail(r, now)
            frepo.add_event(conn, "broken", now, detail, promise_id=r.id)
            supervisors(conn, "promise_broken", detail, now, out)

    def mark_kept(self, conn: Connection, promise_id: int, by: str, now: datetime,
                  ) -> dict[str, Any]:
        """The agent (or an integration) says the promise was kept."""
        row = frepo.get_promise(conn, promise_id)
        if row is None:
            raise PromiseError(promise_id)
        if row.kept_at is None:
            frepo.update_promise(conn, row.id, kept_at=now, kept_by=by[:128],
                                 status="kept" if row.status == "open" else row.status,
                                 updated_at=now)
            conn.execute(update(interactions).where(
                interactions.c.id == row.interaction_id,
                interactions.c.promise_kept_at.is_(None)).values(promise_kept_at=now))
            frepo.add_event(conn, "kept", now, {"by": by[:128]}, promise_id=row.id)
        done = frepo.get_promise(conn, promise_id)
        assert done is not None
        return public(done)

    def board(self, conn: Connection, now: datetime) -> dict[str, Any]:
        open_ = [public(r) for r in frepo.list_promises(conn, status="open", limit=200)]
        broken = [public(r) for r in frepo.list_promises(conn, status="broken", limit=100)]
        at_risk = [p for p in open_ if p["warned"]]
        return {"open": open_, "at_risk": at_risk, "broken": broken}


def public(row: Any) -> dict[str, Any]:
    return {"id": row.id, "interaction_id": row.interaction_id,
            "customer_id": row.customer_id, "action": row.action,
            "due_at": row.due_at.isoformat(), "status": row.status,
            "owner_agent_id": row.owner_agent_id, "owner_queue": row.owner_queue,
            "warned": row.warned_at is not None,
            "broken_at": row.broken_at.isoformat() if row.broken_at else None,
            "kept_at": row.kept_at.isoformat() if row.kept_at else None,
            "kept_by": row.kept_by}
