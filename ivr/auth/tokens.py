"""API tokens and roles: who may call the admin API, the CRM API and /metrics.

Three roles, least privilege first:

* ``metrics``: ``GET /metrics`` only (a Prometheus scraper);
* ``integration``: ``POST /crm/sources/{source}/records`` only (a CRM pushing records);
* ``admin``: everything above plus ``/admin/*`` and the ``/crm/customers`` look-ups.

A bearer token is accepted when its SHA-256 matches an active ``api_tokens`` row (made by
``ivr tokens create``; the token itself is never stored) or a token configured in the
environment for the role: ``IVR_ADMIN_TOKEN`` (admin), ``IVR_CRM_TOKEN`` (integration),
``IVR_METRICS_TOKEN`` (metrics), given as the token itself or as ``sha256:<64 hex>`` (so
production configuration need not hold the token). Digests are compared with
``hmac.compare_digest``. No token, or one nobody issued (or revoked): 401 with
``WWW-Authenticate: Bearer``. A valid token of another role: 403.

Agents sign in with their own sessions (``ivr.agents.auth``), not with these tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import CheckConstraint, Connection, Integer, String, Table, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ivr.core.db import Base, Database, UTCDateTime
from ivr.core.settings import Settings

Role = Literal["admin", "integration", "metrics"]
ROLES: tuple[Role, ...] = ("admin", "integration", "metrics")
# The setting that configures each role's environment token.
ENV_SETTING: dict[Role, str] = {"admin": "admin_token", "integration": "crm_token",
                                "metrics": "metrics_token"}
HASHED_PREFIX = "sha256:"
TOKEN_PREFIX = "ivr_"  # noqa: S105 - recognisable to secret scanners and in a leaked log line
# last_used_at is written at most this often per token (a scrape every 15 s is no write).
LAST_USED_EVERY = timedelta(minutes=1)


class ApiToken(Base):
    """A token issued by ``ivr tokens create``: only the SHA-256 (hex) of it is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("role IN ('admin', 'integration', 'metrics')", name="role"),)


api_tokens: Table = ApiToken.__table__  # type: ignore[assignment]


# -- hashing (pure)


def digest(token: str) -> str:
    """The SHA-256 of a token, hex: what the table and a ``sha256:`` setting hold."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def configured_digest(value: str) -> str | None:
    """The digest a configured token stands for: ``sha256:<hex>`` as given, a plain token
    hashed, an empty setting None. (Settings refuses a malformed ``sha256:`` value.)"""
    if not value:
        return None
    if value.startswith(HASHED_PREFIX):
        return value[len(HASHED_PREFIX):].lower()
    return digest(value)


def env_roles(settings: Settings, given: str) -> set[Role]:
    """The roles whose environment token is ``given`` (a digest). Every role is compared,
    so the time taken does not tell which one matched."""
    found: set[Role] = set()
    for role, setting in ENV_SETTING.items():
        expected = configured_digest(getattr(settings, setting).get_secret_value())
        if expected is not None and hmac.compare_digest(given.encode(), expected.encode()):
            found.add(role)
    return found


# -- queries


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role,
                "created_at": self.created_at.isoformat(),
                "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


def create(conn: Connection, name: str, role: Role, now: datetime) -> str:
    """Store a new token's digest; return the token (shown once, never stored). A taken
    name raises ``IntegrityError``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    token = new_token()
    conn.execute(api_tokens.insert().values(name=name, role=role, token_hash=digest(token),
                                            created_at=now))
    return token


def list_tokens(conn: Connection) -> list[TokenInfo]:
    t = api_tokens.c
    rows = conn.execute(select(t.name, t.role, t.created_at, t.last_used_at, t.revoked_at)
                        .order_by(t.name))
    return [TokenInfo(*row) for row in rows]


def revoke(conn: Connection, name: str, now: datetime) -> bool | None:
    """Revoke the token called ``name``: True, False when it was revoked already, None when
    there is no such token."""
    t = api_tokens.c
    done = conn.execute(update(api_tokens).where(t.name == name, t.revoked_at.is_(None))
                        .values(revoked_at=now)).rowcount
    if done:
        return True
    exists = conn.execute(select(t.id).where(t.name == name)).first()
    return False if exists is not None else None


def active_role(conn: Connection, given: str, now: datetime) -> str | None:
    """The role of the active token with this digest (and its use noted), or None."""
    t = api_tokens.c
    row = conn.execute(select(t.id, t.role, t.last_used_at)
                       .where(t.token_hash == given, t.revoked_at.is_(None))).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        conn.execute(update(api_tokens).where(t.id == row.id).values(last_used_at=now))
    return str(row.role)


def lookup(db: Database, given: str, now: datetime) -> str | None:
    with db.engine.begin() as conn:
        return active_role(conn, given, now)
