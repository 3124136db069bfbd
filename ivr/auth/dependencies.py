"""The API token check as a FastAPI route dependency: ``RequireRole`` (401 without a valid
token, 403 naming the roles allowed), and the three the routes use."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ivr.auth.tokens import ROLES, Role, digest, env_roles, lookup
from ivr.services import web

# Its own scheme name: the agents' session bearer (ivr.agents.endpoints) is "HTTPBearer".
bearer = HTTPBearer(auto_error=False, scheme_name="ApiToken",
                    description="an API token (`ivr tokens create`) or IVR_*_TOKEN")


class RequireRole:
    """A route dependency: the request's bearer token must have one of ``roles``.
    ``what`` names the token in the 401 answer (which setting or command makes one)."""

    def __init__(self, *roles: Role, what: str) -> None:
        self.roles = frozenset(roles)
        self.what = what

    async def __call__(
            self, request: Request,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if creds is None or not creds.credentials:
            raise self._unauthorized()
        state = web(request)
        settings = state.settings
        given = digest(creds.credentials)
        roles: set[str] = set(env_roles(settings, given))
        if not roles & self.roles:
            db = state.db_or_none
            if db is not None:
                found = await db.run(lookup, db, given, state.clock.now())
                if found is not None:
                    roles.add(found)
        if not roles:
            raise self._unauthorized()
        if not roles & self.roles:
            raise HTTPException(403, f"this token's role ({', '.join(sorted(roles))}) may not "
                                f"use this endpoint; it needs: "
                                f"{', '.join(r for r in ROLES if r in self.roles)}")

    def _unauthorized(self) -> HTTPException:
        return HTTPException(401, f"invalid or missing {self.what}",
                             headers={"WWW-Authenticate": "Bearer"})


require_admin = RequireRole(
    "admin", what="admin token (IVR_ADMIN_TOKEN, or `ivr tokens create --role admin`)")
require_integration = RequireRole(
    "admin", "integration",
    what="integration token (IVR_CRM_TOKEN, or `ivr tokens create --role integration`)")
require_metrics = RequireRole(
    "admin", "metrics",
    what="metrics token (IVR_METRICS_TOKEN, or `ivr tokens create --role metrics`)")
