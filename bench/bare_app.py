"""The same-run baseline for bench/webhooks.py: a bare Starlette endpoint, no IVR code.

``POST /twilio/gather`` reads the form body (as every real webhook must) and answers a
fixed TwiML document of the size and shape of a real menu step; ``GET /healthz`` answers
the readiness probe. Served by uvicorn with the settings ``ivr serve`` uses (uvicorn.run
defaults: uvloop + httptools when installed, one process), so the difference to the menu
step is the IVR application itself.

    python bench/bare_app.py --host 127.0.0.1 --port 8100
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/twilio/gather?s=2" '
    'actionOnEmptyResult="true" input="dtmf speech" language="he-IL" method="POST" '
    'speechTimeout="auto" timeout="5"><Say language="he-IL" voice="Google.he-IL-Standard-A">'
    "לבירורי חשבון הקישו 1. לתמיכה טכנית הקישו 2. לנציג הקישו 0.</Say></Gather></Response>"
)


async def gather(request: Request) -> Response:
    await request.body()
    return Response(TWIML, media_type="text/xml")


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route("/twilio/gather", gather, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # The same call ivr.cli._serve makes for one worker.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
