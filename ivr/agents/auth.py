"""Agent credentials: scrypt password hashes and opaque session tokens stored as SHA-256.

Passwords are hashed with the standard library's scrypt (a memory-hard KDF, RFC 7914);
the stored string carries its own parameters, so they can be raised later without
invalidating existing hashes. A hash costs about a tenth of a second of a core on purpose, so
a server checks them in a few threads of their own (``Hashing``), never on the event loop
where callers' webhooks run. Session tokens are random (``secrets``) and only their SHA-256 is
stored: a leaked table opens no console.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    if not password:
        raise ValueError("an empty password")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=_MAXMEM, dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), maxmem=_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# A hash to check against when the username does not exist, so a wrong username costs
# the same time as a wrong password (no user enumeration by timing).
DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + _b64(b"\0" * 32)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class HashingBusy(Exception):
    """More sign-ins are being checked at once than ``Hashing`` lets wait."""


class Hashing:
    """Password checks off the event loop, a few at a time: ``threads`` slots (a semaphore)
    and as many threads of their own (scrypt releases the GIL, so a check takes a core, not
    the loop), and at most ``max_pending`` sign-ins in progress (checked or waiting for a
    slot); more are refused at once (``HashingBusy``), so a flood of sign-ins can neither
    slow a caller's webhook nor pile up without end. A sign-in holds its slot from its
    throttle check to its failure being counted, so with one slot every check sees every
    earlier failure. The threads start with the first check (and end with the object:
    ThreadPoolExecutor wakes its idle threads when it is collected)."""

    def __init__(self, threads: int, max_pending: int) -> None:
        self.threads = threads
        self.max_pending = max_pending
        self.pending = 0
        self._slots = asyncio.Semaphore(threads)
        self._pool: ThreadPoolExecutor | None = None

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """A place among the sign-ins in progress for the whole sign-in, or HashingBusy."""
        if self.pending >= self.max_pending:
            raise HashingBusy
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the ``threads`` checks that may run at once."""
        async with self._slots:
            yield

    async def verify(self, password: str, stored: str) -> bool:
        """In a thread of the pool (hold a ``slot`` around it)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads,
                                            thread_name_prefix="password")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, verify_password, password, stored)
