"""Admin API: menu status and reload. A bearer token of the admin role (``ivr.auth``)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request

from ivr.auth.dependencies import require_admin
from ivr.menu.registry import MenuRegistry
from ivr.services import web

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _status(registry: MenuRegistry) -> dict[str, Any]:
    current = registry.current if registry.loaded else None
    return {
        "version": current.version if current else None,
        "menus": sorted(current.menus) if current else [],
        "report": registry.last_report.as_dict(),
    }


@router.get("/menus")
async def menus_status(request: Request) -> dict[str, Any]:
    """The live menu version and the last load's report (refused files and why)."""
    return _status(web(request).menus)


@router.post("/menus/reload")
async def menus_reload(request: Request) -> dict[str, Any]:
    """Re-read the menu directory now. Refused files keep their last good version live."""
    registry = web(request).menus
    # Parsing and checking run in a thread, never on the event loop: a slow or hostile
    # file cannot stall the webhooks (the registry serialises reloads itself).
    await asyncio.to_thread(registry.reload)
    return _status(registry)
