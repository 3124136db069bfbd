"""``/readyz`` (is this process ready to answer calls) and ``/metrics`` (metrics role)."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.exposition import generate_latest

from ivr.auth.dependencies import require_metrics
from ivr.core.db import Database
from ivr.core.migrate import is_at_head
from ivr.core.signatures import public_url_warning
from ivr.services import web

router = APIRouter(tags=["ops"])


def readiness(db: Database, menus_loaded: bool) -> dict[str, Any]:
    """Each check's result: the database answers, the menus are loaded, the schema is at the
    latest migration."""
    checks: dict[str, Any] = {"menus": "ok" if menus_loaded else "failed: no menus loaded"}
    started = time.perf_counter()
    try:
        db.ping()  # SQLite: also that a write could begin (no other process's lock)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
        checks["migrations"] = "failed: database unreachable"
        return checks
    # Alembic logs "Context impl …" at INFO whenever it reads the version: not on every probe.
    alembic_log = logging.getLogger("alembic.runtime.migration")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        checks["migrations"] = "ok" if is_at_head(db.engine) else "failed: not at head"
    except Exception as exc:
        checks["migrations"] = f"failed: {type(exc).__name__}"
    finally:
        alembic_log.setLevel(level)
    checks["seconds"] = round(time.perf_counter() - started, 4)
    return checks


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when this process can serve calls; 503 naming the check that failed. A
    ``warnings`` list names configuration to fix that does not stop it serving."""
    state = web(request)
    db = state.db_or_none
    menus = state.menus_or_none
    loaded = bool(menus is not None and menus.loaded)
    if db is None:
        checks: dict[str, Any] = {"database": "failed: not started",
                                  "menus": "ok" if loaded else "failed: no menus loaded",
                                  "migrations": "failed: not started"}
    else:
        checks = await db.run(readiness, db, loaded)
    ready = all(checks[k] == "ok" for k in ("database", "menus", "migrations"))
    body = {"status": "ready" if ready else "not ready", **checks}
    # Configuration to fix, which does not stop this process from serving (never a 503).
    warnings = [w for w in (public_url_warning(state.settings),) if w is not None]
    if warnings:
        body["warnings"] = warnings
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", dependencies=[Depends(require_metrics)],
            response_class=PlainTextResponse)  # documents text/plain, not JSON
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this app's registry (gauges read from the database)."""
    registry: CollectorRegistry = web(request).metrics.registry
    db = web(request).db_or_none
    body = await db.run(generate_latest, registry) if db is not None else \
        generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
