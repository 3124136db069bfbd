"""The FastAPI application factory. Resources open in the lifespan and close with it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Receive, Scope, Send

from callbacks import endpoints as callbacks_endpoints
from callbacks.dialer import Dialer
from callbacks.followups import endpoints as followup_endpoints
from crm_sync import endpoints as crm_endpoints
from ivr.agents import endpoints as agent_endpoints
from ivr.agents import webhooks as agents_webhooks
from ivr.agents.dispatch import RoutingLoop
from ivr.agents.events import EventBus
from ivr.agents.gateway import Gateway
from ivr.calls import endpoints as calls_endpoints
from ivr.calls.repository import DbVersionStore
from ivr.calls.webhook import TwilioRoutes, is_twilio
from ivr.core.clock import Clock, SystemClock
from ivr.core.db import Database
from ivr.core.limits import BodyLimit, limits_for
from ivr.core.proxies import ProxyHeaders, TrustedProxies
from ivr.core.settings import Settings
from ivr.core.signatures import SignatureChecker, public_url_warning
from ivr.i18n import endpoints as i18n_endpoints
from ivr.menu import endpoints as menu_endpoints
from ivr.menu.registry import MenuRegistry
from ivr.observability import endpoints as observability_endpoints
from ivr.observability.metrics import DatabaseCollector, Metrics, redactor
from ivr.reports import endpoints as report_endpoints
from ivr.retention import endpoints as retention_endpoints
from ivr.services import LOCAL_URL, AfterAnswer, WebState, build_services
from ivr.surveys import webhooks as survey_webhooks
from ivr.transfers import endpoints as transfer_endpoints
from ivr.transfers import webhooks as transfer_webhooks
from ivr.transfers.gateway import ConferenceGateway

log = logging.getLogger("ivr")

#: Every Twilio webhook route, from each feature (the signature test walks them all).
TWILIO_ROUTES = [*calls_endpoints.ROUTES, *agents_webhooks.ROUTES, *callbacks_endpoints.ROUTES,
                 *survey_webhooks.ROUTES, *followup_endpoints.ROUTES,
                 *transfer_webhooks.ROUTES]


async def _checkpoint_sqlite(db: Database, stop: asyncio.Event, every: float = 0.25) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        try:
            await asyncio.to_thread(db.checkpoint)
        except Exception:
            log.exception("SQLite checkpoint failed; will retry")


async def _watch_menus(db: Database, registry: MenuRegistry, stop: asyncio.Event) -> None:
    import watchfiles  # noqa: PLC0415

    async for _changes in watchfiles.awatch(registry.directory, stop_event=stop,
                                            debounce=200, step=50):
        log.info("menu files changed; reloading")
        try:
            await asyncio.to_thread(registry.reload)  # off the event loop
        except Exception:
            log.exception("menu reload failed; the previous menus stay live")


class IvrApp(FastAPI):
    """FastAPI, with Twilio's webhooks (``/twilio/*``) answered by ``twilio`` before
    FastAPI's own layers (its server-error, telemetry, body-limit, exception and exit-stack
    middlewares and the router's pattern search): 6-31 us a request for nothing these
    routes use (a refused webhook called in-process: medians of 97-100 against 104-130 us,
    bench/results.md), 2-4% of a menu step. Their handlers answer TwiML for every failure
    themselves (``ivr.calls.webhook``), and ``twilio`` carries the product's own layers
    (``create_app``). The app is still the request's ``app``, as FastAPI sets it."""

    twilio: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.twilio is not None and is_twilio(scope):
            scope["app"] = self
            await self.twilio(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, clock: Clock | None = None,
               gateway: Gateway | None = None, dialer: Dialer | None = None,
               local_url: str = LOCAL_URL,
               conferences: ConferenceGateway | None = None) -> FastAPI:
    """``local_url``: where this server is reached from its own host (the local dialer
    of the demo posts the callback's webhooks there when IVR_PUBLIC_URL is not set).
    ``conferences``: the conference participants' gateway (default: by the settings)."""
    clock = clock or SystemClock()
    state = WebState(settings, clock, Metrics(DatabaseCollector(
        lambda: state.db_or_none, clock)), SignatureChecker(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.validate_signatures:
            log.warning("Twilio signature validation is OFF (IVR_VALIDATE_SIGNATURES=false): "
                        "anyone can drive calls on this server")
        elif not settings.twilio_auth_token.get_secret_value() and not settings.twilio_shared_keys:
            log.error("IVR_TWILIO_AUTH_TOKEN is not set: every Twilio webhook will be refused")
        if (unpinned := public_url_warning(settings)) is not None:
            log.warning(unpinned)
        db = Database(settings)
        registry = MenuRegistry(settings.menus_dir, settings.entry_menu,
                                DbVersionStore(db.engine, clock.now))
        report = await asyncio.to_thread(registry.reload)  # off the event loop
        if not registry.loaded:
            db.close()
            raise RuntimeError(f"no menus can be served: {report.fatal}")
        try:
            services = build_services(db.engine, settings, clock, menus=registry,
                                      gateway=gateway, dialer=dialer, local_url=local_url,
                                      conferences=conferences)
        except Exception:
            db.close()
            raise
        step_pool = await db.open_async_pool()
        # LISTEN needs a session of its own: the database's direct URL, never a pooler's.
        bus = EventBus(None if db.is_sqlite else make_url(db.direct_url).set(
            drivername="postgresql").render_as_string(hide_password=False))
        await bus.start()
        routing = RoutingLoop(db, services.agents, bus)
        state.start(services, db, bus, routing, step_pool)
        # Everything loaded so far lives as long as the process. Freezing it keeps the
        # collector from re-scanning it: full collections over it took up to 90 ms and were
        # most of the webhook's p99 latency (measured with gc.callbacks under load).
        # A request's garbage is freed by reference counting; cyclic collections can be rarer.
        gc.collect()
        gc.freeze()
        previous_thresholds = gc.get_threshold()
        gc.set_threshold(20_000, 20, 50)
        stop = asyncio.Event()
        tasks = []
        if settings.watch_menus:
            tasks.append(asyncio.create_task(_watch_menus(db, registry, stop)))
        if db.is_sqlite:
            tasks.append(asyncio.create_task(_checkpoint_sqlite(db, stop)))
        if settings.route_every_seconds > 0:
            tasks.append(asyncio.create_task(routing.run(settings.route_every_seconds, stop)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await bus.stop()
            await db.drain()  # use cases whose requests went away finish first
            if step_pool is not None:
                await step_pool.close()
            state.stop()
            db.close()
            gc.unfreeze()
            gc.set_threshold(*previous_thresholds)

    app = IvrApp(title="IVR call router", version="0.1.0", lifespan=lifespan)
    app.state.web = state
    # Each feature's routes: Twilio's webhooks (signature first, TwiML always), then the
    # JSON APIs, the console and the probes.
    app.router.routes.extend(TWILIO_ROUTES)
    trusted = TrustedProxies(settings.trusted_proxies)
    limits = limits_for(settings)
    # The same layers around both, outermost first: what a request sets off (requests to
    # Twilio, the routing pass) runs after its answer is sent; no route, the Twilio ones
    # included, reads a body over its limit; X-Forwarded-* become the request's scheme,
    # Host and client only from a trusted proxy.
    app.twilio = AfterAnswer(BodyLimit(ProxyHeaders(TwilioRoutes(TWILIO_ROUTES),
                                                    trusted=trusted), limits=limits),
                             state=state)
    app.add_middleware(ProxyHeaders, trusted=trusted)
    app.add_middleware(BodyLimit, limits=limits)
    app.add_middleware(AfterAnswer, state=state)  # outermost: added last
    app.include_router(menu_endpoints.router)
    app.include_router(crm_endpoints.router)
    app.include_router(agent_endpoints.router)
    app.include_router(transfer_endpoints.router)
    app.include_router(retention_endpoints.router)
    app.include_router(followup_endpoints.router)
    app.include_router(report_endpoints.router)
    app.include_router(i18n_endpoints.router)
    app.include_router(observability_endpoints.router)
    app.mount("/agent/static", StaticFiles(directory=agent_endpoints.STATIC_DIR,
                                           check_dir=False), name="agent-static")

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def route_paths(app: FastAPI) -> list[tuple[str, set[str]]]:
    """Every (path, methods) the app serves, including routes of included routers."""
    out: list[tuple[str, set[str]]] = []
    stack = list(app.routes)
    while stack:
        route = stack.pop(0)
        path = getattr(route, "path", None)
        if path is not None:
            out.append((path, set(getattr(route, "methods", None) or ())))
        inner = getattr(route, "original_router", None)  # FastAPI's included routers
        if inner is not None:
            stack.extend(inner.routes)
    return out


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from the environment. A worker is a fresh
    process, so it sets up its own logging."""
    from ivr.core.logging import configure  # noqa: PLC0415

    settings = Settings()
    configure(settings, redactor(settings.default_region))
    return create_app(settings)
