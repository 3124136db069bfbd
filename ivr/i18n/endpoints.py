"""The catalogs for the browser: ``/agent/i18n/messages.js`` sets ``window.IVR_MESSAGES``
(every language's texts, which are written right to left, the centre's region and default
language) before ``i18n.js`` runs. A script, not JSON to fetch, so ``t()`` works from the
first line of every console script; the page's CSP allows scripts from this server only."""

from __future__ import annotations

import hashlib
import json
from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ivr.i18n.catalog import LANGUAGES, NAMES, RTL, catalog
from ivr.services import web

router = APIRouter(prefix="/agent/i18n", tags=["i18n"])


@cache
def _script(region: str, default: str) -> tuple[bytes, str]:
    books = catalog()
    payload = {"languages": dict(NAMES), "rtl": sorted(RTL), "region": region,
               "default": default,
               "messages": {lang: books.messages(lang) for lang in LANGUAGES}}
    body = ("window.IVR_MESSAGES = "
            + json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            + ";\n").encode()
    return body, hashlib.sha256(body).hexdigest()[:32]


@router.get("/messages.js", include_in_schema=False)
async def messages(request: Request) -> Response:
    settings = web(request).settings
    body, etag = _script(settings.default_region, settings.interface_language)
    if request.headers.get("if-none-match") == f'"{etag}"':
        return Response(status_code=304, headers={"ETag": f'"{etag}"'})
    return Response(body, media_type="text/javascript; charset=utf-8",
                    headers={"ETag": f'"{etag}"', "Cache-Control": "no-cache",
                             "X-Content-Type-Options": "nosniff"})
