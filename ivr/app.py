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

from ivr import admin, crm_api, observability, webhooks
from ivr.agents import endpoints as agent_endpoints
from ivr.agents.callbacks import build_service as build_callbacks
from ivr.agents.events import EventBus
from ivr.agents.gateway import Dialer, Gateway, HoldLoopGateway, TwilioGateway
from ivr.agents.service import AgentService
from ivr.agents.tasks import RoutingLoop
from ivr.calls.repository import DbVersionStore
from ivr.calls.service import CallService
from ivr.core.clock import Clock, SystemClock
from ivr.core.db import Database
from ivr.core.settings import Settings
from ivr.menu.registry import MenuRegistry
from ivr.signatures import SignatureChecker

log = logging.getLogger("ivr")


async def _checkpoint_sqlite(db: Database, stop: asyncio.Event, every: float = 0.25) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        try:
            await asyncio.to_thread(db.checkpoint)
        except Exception:
            log.exception("SQLite checkpoint failed; will retry")


async def _watch_menus(app: FastAPI, stop: asyncio.Event) -> None:
    import watchfiles  # noqa: PLC0415

    registry: MenuRegistry = app.state.menus
    db: Database = app.state.db
    async for _changes in watchfiles.awatch(registry.directory, stop_event=stop,
                                            debounce=200, step=50):
        log.info("menu files changed; reloading")
        try:
            await db.run(registry.reload)
        except Exception:
            log.exception("menu reload failed; the previous menus stay live")


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


def create_app(settings: Settings, clock: Clock | None = None,
               gateway: Gateway | None = None, dialer: Dialer | None = None,
               local_url: str = "http://127.0.0.1:8000") -> FastAPI:
    """``local_url``: where this server is reached from its own host (the local dialer
    of the demo posts the callback's webhooks there when IVR_PUBLIC_URL is not set)."""
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.validate_signatures:
            log.warning("Twilio signature validation is OFF (IVR_VALIDATE_SIGNATURES=false): "
                        "anyone can drive calls on this server")
        elif not settings.twilio_auth_token.get_secret_value() and not settings.twilio_shared_keys:
            log.error("IVR_TWILIO_AUTH_TOKEN is not set: every Twilio webhook will be refused")
        db = Database(settings)
        registry = MenuRegistry(settings.menus_dir, settings.entry_menu,
                                DbVersionStore(db.engine, clock.now))
        report = await db.run(registry.reload)
        if not registry.loaded:
            db.close()
            raise RuntimeError(f"no menus can be served: {report.fatal}")
        app.state.db = db
        app.state.step_pool = await db.open_async_pool()
        app.state.menus = registry
        app.state.calls = CallService(db.engine, registry, clock, settings.default_region,
                                      settings.repeat_window_minutes)
        agents = AgentService(db.engine, registry, clock, settings,
                              gateway or default_gateway(settings))
        try:
            agents.callbacks = build_callbacks(db.engine, clock, settings, agents.gateway,
                                               local_url, dialer)
        except Exception:
            db.close()
            raise
        app.state.agents = agents
        bus = EventBus(None if db.is_sqlite else db.engine.url.set(
            drivername="postgresql").render_as_string(hide_password=False))
        await bus.start()
        app.state.events = bus
        app.state.routing = RoutingLoop(db, agents, bus)
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
            tasks.append(asyncio.create_task(_watch_menus(app, stop)))
        if db.is_sqlite:
            tasks.append(asyncio.create_task(_checkpoint_sqlite(db, stop)))
        if settings.route_every_seconds > 0:
            tasks.append(asyncio.create_task(
                app.state.routing.run(settings.route_every_seconds, stop)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await bus.stop()
            if app.state.step_pool is not None:
                await app.state.step_pool.close()
            db.close()
            gc.unfreeze()
            gc.set_threshold(*previous_thresholds)

    app = FastAPI(title="IVR call router", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.clock = clock
    app.state.signatures = SignatureChecker(settings)
    app.state.metrics = observability.Metrics(observability.DatabaseCollector(
        lambda: getattr(app.state, "db", None), clock))
    app.router.routes.extend(webhooks.ROUTES)
    app.add_middleware(webhooks.TwilioFastPath)
    app.include_router(admin.router)
    app.include_router(crm_api.router)
    app.include_router(agent_endpoints.router)
    app.include_router(observability.router)
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
    configure(settings, observability.redactor(settings.default_region))
    return create_app(settings)
