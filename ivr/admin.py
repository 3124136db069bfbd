"""Admin API: menu status and reload. Bearer-token authentication (IVR_ADMIN_TOKEN)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ivr.core.db import Database
from ivr.core.settings import Settings
from ivr.menu.registry import MenuRegistry

bearer = HTTPBearer(auto_error=False)


def require_admin(request: Request,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                  ) -> None:
    settings: Settings = request.app.state.settings
    expected = settings.admin_token.get_secret_value()
    if not expected:
        raise HTTPException(401, "admin API disabled: set IVR_ADMIN_TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), expected.encode()):
        raise HTTPException(401, "invalid or missing admin token",
                            headers={"WWW-Authenticate": "Bearer"})


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
    return _status(request.app.state.menus)


@router.post("/menus/reload")
async def menus_reload(request: Request) -> dict[str, Any]:
    """Re-read the menu directory now. Refused files keep their last good version live."""
    registry: MenuRegistry = request.app.state.menus
    db: Database = request.app.state.db
    await db.run(registry.reload)
    return _status(registry)
