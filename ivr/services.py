"""The composition root: every service of the product, built once from the settings and
typed, for the web app (``ivr.app``), the worker (``ivr.worker``) and the CLI.

``build_services`` picks the Twilio gateway (one place: the REST API with an account SID,
which needs ``IVR_PUBLIC_URL``; else the wait loop's ``<Leave/>``), loads the callback policy
and plugs the callback service into the agents' queue (``ivr.agents.ports.QueueWork``).
``WebState`` adds what only a web process has (the console event bus, the routing loop, the
menu step's async pool, metrics, the signature checker); route handlers reach it with
``web(request)`` instead of untyped ``app.state`` attributes.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from callbacks.dialer import Dialer
from callbacks.followups.service import FollowUpService
from callbacks.followups.service import build_service as build_followups
from callbacks.followups.sms import SmsSender
from callbacks.service import CallbackService, build_service
from ivr.agents.dispatch import Dispatcher
from ivr.agents.gateway import Gateway, HoldLoopGateway, TwilioGateway
from ivr.agents.ports import NO_QUEUE_WORK, Outcome
from ivr.agents.service import AgentService
from ivr.calls.service import CallService
from ivr.core.clock import Clock
from ivr.core.settings import Settings
from ivr.menu.registry import MenuRegistry
from ivr.retention.service import RetentionService
from ivr.surveys.policy import LiveSurveys
from ivr.surveys.ports import NO_FOLLOW_UP
from ivr.surveys.service import SurveyService
from ivr.transfers.gateway import ConferenceGateway, LocalConferences, TwilioConferences
from ivr.transfers.local_party import LocalParty
from ivr.transfers.service import TransferService

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

    from ivr.agents.dispatch import RoutingLoop
    from ivr.agents.events import EventBus
    from ivr.core.db import Database
    from ivr.core.signatures import SignatureChecker
    from ivr.observability.metrics import Metrics

log = logging.getLogger(__name__)

#: Where a server is reached from its own host when IVR_PUBLIC_URL is not set (the demo's
#: local dialer posts the callback's webhooks there); as a default, its port is IVR_PORT's.
LOCAL_URL = "http://127.0.0.1:8000"


def default_gateway(settings: Settings) -> Gateway:
    """The Twilio REST API when an account is configured, else the wait-loop release."""
    token = settings.twilio_auth_token.get_secret_value()
    if settings.twilio_account_sid and token:
        if not settings.public_url:
            raise RuntimeError("IVR_PUBLIC_URL is required with IVR_TWILIO_ACCOUNT_SID: "
                               "Twilio fetches the connect URL of a dequeued caller there")
        return TwilioGateway(settings.twilio_account_sid, token,
                             api_base_url=settings.twilio_api_base_url)
    return HoldLoopGateway()


def default_conferences(settings: Settings) -> ConferenceGateway:
    """Conference participants through Twilio's REST API with an account, else the
    stand-in (the demo, the simulator), whose called parties answer after
    IVR_LOCAL_ANSWER_SECONDS with signed status callbacks to this server's own URL (the
    participants' status callbacks are whole URLs of it)."""
    token = settings.twilio_auth_token.get_secret_value()
    if settings.twilio_account_sid and token:
        return TwilioConferences(settings.twilio_account_sid, token,
                                 api_base_url=settings.twilio_api_base_url)
    ring = settings.local_answer_seconds
    return LocalConferences(LocalParty(token, ring) if ring is not None and token else None)


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: Engine
    gateway: Gateway
    agents: AgentService
    callbacks: CallbackService | None
    menus: MenuRegistry | None = None
    calls: CallService | None = None
    surveys: SurveyService | None = None
    followups: FollowUpService | None = None  # issue 17.2
    retention: RetentionService | None = None
    transfers: TransferService | None = None

    def dispatcher(self, *, timers: bool = True) -> Dispatcher:
        """The dispatcher as a worker runs it (database and network work in threads)."""
        return Dispatcher(self.agents, timers=timers)


def build_services(engine: Engine, settings: Settings, clock: Clock, *,
                   menus: MenuRegistry | None = None, gateway: Gateway | None = None,
                   dialer: Dialer | None = None, local_url: str = LOCAL_URL,
                   sms: SmsSender | None = None,
                   conferences: ConferenceGateway | None = None) -> Services:
    """Every service over ``engine``. ``menus``: the live menus (a web process; the worker
    answers no caller and has none). A callback policy with mistakes raises PolicyError."""
    gateway = gateway or default_gateway(settings)
    if local_url == LOCAL_URL:  # the default: this host, at IVR_PORT
        local_url = f"http://127.0.0.1:{settings.port}"
    callbacks = build_service(engine, clock, settings, gateway,
                              settings.public_url or local_url, dialer)
    retention = RetentionService.from_file(settings.wrapup_file)
    # Post-call surveys (issue 17.1): a surveys.yaml with mistakes raises SurveyError.
    # Follow-ups (issue 17.2): followups.yaml with mistakes raises PolicyError; a low survey
    # score opens one (the survey's port), a follow-up's callback pops its reason.
    followups = build_followups(engine, clock, settings, gateway,
                                settings.public_url or local_url, dialer, sms)
    if followups is not None and callbacks is not None:
        callbacks.extra_pop = followups.pop_fields
    surveys = SurveyService(engine, clock, LiveSurveys(settings.surveys_file),
                            open_follow_up=followups.open_from_low_score
                            if followups is not None else NO_FOLLOW_UP)
    agents = AgentService(engine, menus, clock, settings, gateway,
                          callbacks if callbacks is not None else NO_QUEUE_WORK,
                          after_call=surveys,
                          wrap_up_check=retention)
    # Recognition (issue 17.3): birthdays and holidays in the centre's zone and country;
    # the retention signals give the menus the fact `leaving_risk` (first in line).
    calls = (CallService(engine, menus, clock, settings.default_region,
                         settings.repeat_window_minutes, settings.open_at_any_hour,
                         timezone=settings.timezone,
                         customer_facts=lambda conn, customer_id, now: {
                             "leaving_risk": retention.risk(conn, customer_id, now).flag})
             if menus is not None else None)
    # Transfers (issue 16): the connected call on a conference, through the participants
    # REST API with an account SID, else the stand-in (``ivr.transfers.gateway``).
    transfers = TransferService(agents, conferences or default_conferences(settings),
                                settings.public_url or local_url, callbacks)
    agents.bridge = transfers
    return Services(settings, clock, engine, gateway, agents, callbacks, menus, calls,
                    transfers=transfers,
                    surveys=surveys, followups=followups, retention=retention)


def callback_services(engine: Engine, settings: Settings, clock: Clock, *,
                      gateway: Gateway | None = None,
                      dialer: Dialer | None = None) -> AgentService | None:
    """The agent service with its callback service plugged in, as a worker runs them (no
    menus); None when callbacks are off."""
    services = build_services(engine, settings, clock, gateway=gateway, dialer=dialer)
    return services.agents if services.callbacks is not None else None


class WebState:
    """A web process's state: the services (after the lifespan started) and the parts only
    a server has. ``app.state.web``."""

    def __init__(self, settings: Settings, clock: Clock, metrics: Metrics,
                 signatures: SignatureChecker) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.signatures = signatures
        self.started: _Started | None = None

    def start(self, services: Services, db: Database, events: EventBus,
              routing: RoutingLoop, step_pool: Any) -> None:
        self.started = _Started(services, db, events, routing, step_pool)

    def stop(self) -> None:
        self.started = None

    @property
    def _live(self) -> _Started:
        if self.started is None:
            raise RuntimeError("the app has not started (its lifespan is not running)")
        return self.started

    @property
    def services(self) -> Services:
        return self._live.services

    @property
    def db(self) -> Database:
        return self._live.db

    @db.setter
    def db(self, db: Database) -> None:  # a probe's test swaps the database
        self._live.db = db

    @property
    def db_or_none(self) -> Database | None:
        return self.started.db if self.started is not None else None

    @property
    def menus(self) -> MenuRegistry:
        menus = self._live.services.menus
        assert menus is not None  # a web process always has its menus
        return menus

    @menus.setter
    def menus(self, menus: MenuRegistry) -> None:
        self._live.services.menus = menus

    @property
    def menus_or_none(self) -> MenuRegistry | None:
        return self.started.services.menus if self.started is not None else None

    @property
    def calls(self) -> CallService:
        calls = self._live.services.calls
        assert calls is not None
        return calls

    @property
    def agents(self) -> AgentService:
        return self._live.services.agents

    @property
    def surveys(self) -> SurveyService:
        surveys = self._live.services.surveys
        assert surveys is not None  # build_services always builds it
        return surveys

    @property
    def callbacks(self) -> CallbackService:
        callbacks = self._live.services.callbacks
        if callbacks is None:
            raise LookupError("callbacks are not configured (IVR_CALLBACKS_FILE)")
        return callbacks

    @property
    def events(self) -> EventBus:
        return self._live.events

    @property
    def routing(self) -> RoutingLoop:
        return self._live.routing

    @property
    def step_pool(self) -> Any:
        return self._live.step_pool

    async def after_commit(self, out: Outcome) -> None:
        """Wake the consoles of what a use case published; then its follow-up: the use cases
        it leaves for after its commit (on the database, as every use case runs), requests to
        Twilio (in a thread: never on the event loop) and a routing pass if it may match.
        Inside a request the follow-up waits until the answer is sent (``AfterAnswer``);
        outside one (a sweep, a test) it runs now."""
        self.events.published(out.published)
        if not (out.then or out.after or out.reroute):
            return
        later = _after_answer.get()
        if later is not None:
            later.append(out)
            return
        await self.follow_up(out)

    async def follow_up(self, out: Outcome) -> None:
        """``out``'s use cases, then its network work (each result followed up in turn),
        then the routing pass it asks for."""
        for use_case in out.then:
            await self.after_commit(await self.db.run(use_case))
        for work in out.after:
            await self.after_commit(await asyncio.to_thread(work))
        if out.reroute:
            await self.routing.route_now()


#: Set by ``AfterAnswer`` while it serves a request: the outcomes its use cases left to
#: follow up once the answer is sent, in order (gathered by ``WebState.after_commit``).
_after_answer: ContextVar[list[Outcome] | None] = ContextVar("ivr_after_answer",
                                                            default=None)


class AfterAnswer:
    """ASGI middleware: what a request's change sets off is done once its answer is sent
    (issue 18 item 1): the requests to Twilio (ringing an agent into the caller's
    conference, removing a leg), the use cases that record what Twilio answered, and a
    routing pass when the change may make a match (a caller joined a queue, a call or a wrap-up
    ended, an agent went available). Twilio's webhooks and the consoles' requests no longer
    wait for Twilio's REST API, nor for a routing pass (and for the pass another request
    started before it): with several processes on PostgreSQL those waits were most of their
    latency. What an answer says never depended on them (TwiML and JSON are built from the
    use case's own commit); their results reach the consoles as events, as they always did.
    It all runs in the same ASGI call, after the answer's last byte is sent: a test client
    (which waits for the whole call) sees it done, and a server's next request on the
    connection is not held. The routing passes asked for run as one, after the rest."""

    def __init__(self, app: ASGIApp, state: WebState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        later: list[Outcome] = []
        token = _after_answer.set(later)
        try:
            await self.app(scope, receive, send)
        finally:
            try:
                route = await self._follow_up(later)
            finally:
                _after_answer.reset(token)
            if route:
                await self._route()

    async def _follow_up(self, later: list[Outcome]) -> bool:
        """Each outcome's network and database work (what they set off joins the list);
        whether any asked for a routing pass."""
        route = False
        while later:
            out = later.pop(0)
            route = route or out.reroute
            try:
                await self.state.follow_up(replace(out, reroute=False))
            except Exception:
                # The answer is sent; each piece of work handles what it can fail on, the
                # sweep takes back what is left (an offer never connected, a leg never
                # noted). One failure does not keep the others from running.
                log.exception("work after an answer failed")
        return route

    async def _route(self) -> None:
        try:
            await self.state.routing.route_now()
        except Exception:
            # The answer is sent; the sweep (IVR_ROUTE_EVERY_SECONDS) routes what this missed.
            log.exception("routing after an answer failed; the next pass or sweep retries")


@dataclass
class _Started:
    services: Services
    db: Database
    events: EventBus
    routing: RoutingLoop
    step_pool: Any


def web(request: Request) -> WebState:
    """The typed state of the app serving ``request``."""
    state: WebState = request.app.state.web
    return state
