"""What the routing queue asks of the features plugged into it, and the values it passes.

The agents feature owns the queue and the router; the callbacks feature (``callbacks``)
plugs into it through ``QueueWork``: the SLA deadline of a caller's place, what a waiting
caller hears, due callbacks as router work, claiming and dialling them, and the pop of a
callback call. The composition root (``ivr.services``) passes the callback service in;
without one, ``NO_QUEUE_WORK`` answers (no offers, no due work). So ``ivr.agents`` never
imports ``callbacks`` and ``callbacks`` imports ``ivr.agents``: the arrow points one way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import false

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.sql.elements import ColumnElement

    from crm_sync.wrapup import CallFacts, WrapUp
    from ivr.agents.events import Published
    from ivr.agents.routing import Waiting


@dataclass
class Outcome:
    """What a use case decided: TwiML to answer (if any), console events to wake, offers
    to hand to the gateway, and whether routing should run again."""

    twiml: str | None = None
    published: Published = field(default_factory=list)
    reroute: bool = False
    #: Network work to do after the commit, in a thread (requests to Twilio's REST API);
    #: each returns what it changed in turn. A request's is done once its answer is sent.
    after: list[Callable[[], Outcome]] = field(default_factory=list)
    #: Use cases to run after the commit, before the network work: what a request to
    #: Twilio answered, to record (returned by that work). They run as every use case runs
    #: (``Database.run``: on the event loop), never in the thread of the network work, where
    #: each round trip would take the interpreter's lock back from the loop. (Not for
    #: console events a request could write itself: see ``AgentService._dial``.)
    then: list[Callable[[], Outcome]] = field(default_factory=list)


@dataclass(frozen=True)
class PlacedCall:
    """An outbound call to place after the commit (a claimed callback's customer)."""

    attempt_id: int
    request_id: int
    phone: str
    from_number: str


@dataclass
class Reservation:
    """A free agent reserved for a waiting call (``offer_id`` of ``agent_calls``), or for an
    outbound call to place (``placed``)."""

    offer_id: int
    call_sid: str
    queue_sid: str | None
    agent_id: int
    placed: PlacedCall | None = None


@dataclass
class RoutingPass:
    """What one routing pass did: its reservations, the events it wrote, and whether it
    found a match it could not make because another transaction held a row of it
    (PostgreSQL ``SKIP LOCKED``: the caller's own wait round, an agent's request): the
    router then tries again soon rather than at the next sweep."""

    offers: list[Reservation]
    published: Published
    contended: bool = False


class QueueWork(Protocol):
    """The callbacks feature as the queue sees it (``callbacks.service.CallbackService``)."""

    def deadline_for(self, queue: str, tier: str | None,
                     entered_at: datetime) -> datetime | None: ...

    def hold(self, conn: Connection, entry: Any, language: str, params: dict[str, str],
             pause: int, now: datetime) -> str | None: ...

    def due_probe(self) -> ColumnElement[bool]:
        """Whether any callback is due at the bound ``b_now``, as an SQL expression: the
        router asks it in one statement with its own probes (built once)."""
        ...

    def due_work(self, conn: Connection, now: datetime,
                 free_per_queue: Mapping[str, int]) -> list[Waiting]: ...

    def claim(self, conn: Connection, item: Waiting, agent_id: int, now: datetime,
              out: Outcome) -> PlacedCall | None: ...

    def dial(self, placed: list[PlacedCall], out: Outcome) -> None: ...

    def sweep(self, out: Outcome) -> None: ...

    def dialog_start(self, conn: Connection, call_sid: str, entry: Any) -> str | None: ...

    def owns(self, key: str) -> bool: ...

    def context(self, conn: Connection, key: str, now: datetime) -> dict[str, Any]: ...

    def customer_id_of(self, conn: Connection, key: str) -> int | None: ...

    def pending_for(self, conn: Connection, customer_id: int | None) -> list[dict[str, Any]]: ...

    def board(self, conn: Connection, now: datetime) -> dict[str, Any] | None: ...


class NoQueueWork:
    """No callbacks configured: no deadline, the plain hold message, nothing due."""

    def deadline_for(self, queue: str, tier: str | None,
                     entered_at: datetime) -> datetime | None:
        return None

    def hold(self, conn: Connection, entry: Any, language: str, params: dict[str, str],
             pause: int, now: datetime) -> str | None:
        return None

    def due_probe(self) -> ColumnElement[bool]:
        return false()

    def due_work(self, conn: Connection, now: datetime,
                 free_per_queue: Mapping[str, int]) -> list[Waiting]:
        return []

    def claim(self, conn: Connection, item: Waiting, agent_id: int, now: datetime,
              out: Outcome) -> PlacedCall | None:
        return None

    def dial(self, placed: list[PlacedCall], out: Outcome) -> None:
        return None

    def sweep(self, out: Outcome) -> None:
        return None

    def dialog_start(self, conn: Connection, call_sid: str, entry: Any) -> str | None:
        return None

    def owns(self, key: str) -> bool:
        return False

    def context(self, conn: Connection, key: str, now: datetime) -> dict[str, Any]:
        raise LookupError(key)

    def customer_id_of(self, conn: Connection, key: str) -> int | None:
        return None

    def pending_for(self, conn: Connection, customer_id: int | None) -> list[dict[str, Any]]:
        return []

    def board(self, conn: Connection, now: datetime) -> dict[str, Any] | None:
        return None


NO_QUEUE_WORK = NoQueueWork()


class AfterCall(Protocol):
    """What follows an agent's conversation, as the queue sees it (the post-call survey,
    ``ivr.surveys.service.SurveyService``): the TwiML a caller who stayed on the line hears
    instead of the hang-up, and the customer's fields it adds to the screen-pop."""

    def after_agent(self, conn: Connection, offer: Any, call_status: str,
                    now: datetime) -> str | None: ...

    def pop_fields(self, conn: Connection, customer_id: int | None,
                   now: datetime) -> dict[str, Any]: ...


class NoAfterCall:
    """No surveys: the caller's call ends with the agent's; nothing added to the pop."""

    def after_agent(self, conn: Connection, offer: Any, call_status: str,
                    now: datetime) -> str | None:
        return None

    def pop_fields(self, conn: Connection, customer_id: int | None,
                   now: datetime) -> dict[str, Any]:
        return {}


NO_AFTER_CALL = NoAfterCall()


class WrapUpCheck(Protocol):
    """The retention feature as the wrap-up and the pop see it
    (``ivr.retention.service.RetentionService``): the admin's lists a wrap-up is checked
    against, the exit interview written in the wrap-up's transaction, and the customer's
    leaving-risk signal on the pop (``chose``: the retention queues chosen in the IVR)."""

    def refuse(self, wrap: WrapUp) -> str | None: ...

    def record(self, conn: Connection, facts: CallFacts, wrap: WrapUp, interaction_id: int,
               now: datetime) -> None: ...

    def pop_risk(self, conn: Connection, customer_id: int | None, chose: list[str],
                 now: datetime, found: dict[str, Any]) -> dict[str, Any]: ...


class NoWrapUpCheck:
    """No retention feature: any leaving reason, no interview, the store's own signals
    (``crm_sync.screenpop``) with the IVR's choice first."""

    def refuse(self, wrap: WrapUp) -> str | None:
        return None

    def record(self, conn: Connection, facts: CallFacts, wrap: WrapUp, interaction_id: int,
               now: datetime) -> None:
        return None

    def pop_risk(self, conn: Connection, customer_id: int | None, chose: list[str],
                 now: datetime, found: dict[str, Any]) -> dict[str, Any]:
        reasons = [f"chose '{q}' in the IVR (e.g. cancel my service)" for q in chose]
        reasons += list(found.get("reasons") or [])
        return {**found, "flag": bool(reasons), "reasons": reasons}


NO_WRAP_UP_CHECK = NoWrapUpCheck()


class CallBridge(Protocol):
    """How a dequeued caller meets the agent, as the queue sees it: the transfers feature
    (``ivr.transfers.service.TransferService``) puts them on a conference (so the agent can
    hold and transfer); without it the caller ``<Dial>``s the agent."""

    def connect(self, conn: Connection, offer: Any, agent: dict[str, Any], first: bool,
                now: datetime, out: Outcome) -> str | None: ...

    def pop_fields(self, conn: Connection, call_sid: str, now: datetime) -> dict[str, Any]: ...

    def board_fields(self, conn: Connection, board: dict[str, Any]) -> None:
        """Add to the supervisor's board (in place): each call held or being transferred."""
        ...

    def sweep(self) -> Outcome:
        """Finish or roll back what a process left half-done (the dispatcher's sweep)."""
        ...

    def caller_gone(self, conn: Connection, offer: Any, now: datetime, out: Outcome,
                    ) -> None:
        """The caller hung up while ``offer``'s agent was being rung: stop that ringing
        (a ``<Dial>``ed leg ends with its caller by itself; a conference's participant
        does not)."""
        ...

    def agent_label(self, conn: Connection, call_sid: str, agent: str, now: datetime,
                    ) -> str:
        """Who had the call, for its interaction in the history (a transferred call: each
        leg with how long, and the transfer)."""
        ...


class DialBridge:
    """No conference: the connect TwiML ``<Dial>``s the agent (``ivr.agents.twiml``)."""

    def connect(self, conn: Connection, offer: Any, agent: dict[str, Any], first: bool,
                now: datetime, out: Outcome) -> str | None:
        return None

    def pop_fields(self, conn: Connection, call_sid: str, now: datetime) -> dict[str, Any]:
        return {}

    def board_fields(self, conn: Connection, board: dict[str, Any]) -> None:
        return None

    def sweep(self) -> Outcome:
        return Outcome()

    def caller_gone(self, conn: Connection, offer: Any, now: datetime, out: Outcome,
                    ) -> None:
        return None  # Twilio ends the <Dial>ed leg with the caller

    def agent_label(self, conn: Connection, call_sid: str, agent: str, now: datetime,
                    ) -> str:
        return agent


DIAL_BRIDGE = DialBridge()
