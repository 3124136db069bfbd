"""The same-run baseline for bench/screenpop.py: HTTP request in, Server-Sent Event out,
with no IVR code and no database.

``GET /events?agent=N`` is an SSE stream (``text/event-stream``, the headers and the first
``state`` event the agent console's stream sends); ``POST /pop?agent=N`` reads its body (a
JSON document the size of a real screen-pop), hands it to agent N's open streams in this
process and answers a small XML document (the size of the connect webhook's ``<Dial>``);
the stream writes it as ``id: …\\nevent: screenpop\\ndata: <body>\\n\\n``. ``GET /healthz``
answers the readiness probe. Served by uvicorn with the settings ``ivr serve`` uses
(uvicorn.run defaults: uvloop + httptools when installed, one process), so the difference
to the real screen-pop is the IVR application, its database and (PostgreSQL) the
LISTEN/NOTIFY hop between processes. Like ``ivr serve`` it raises its soft limit on open
files to the hard one first (bench/consoles.py holds 1,000 streams).

    python bench/bare_sse.py --host 127.0.0.1 --port 8101
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ivr.core.server import raise_open_files_limit

DIAL = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="/twilio/agent-dial?a=1" '
    'answerOnBridge="true" method="POST" timeout="20"><Client statusCallback='
    '"/twilio/agent-leg?a=1" statusCallbackEvent="answered completed" '
    'statusCallbackMethod="POST">agent</Client></Dial></Response>'
)
HEARTBEAT = 15.0

subscribers: dict[int, set[asyncio.Queue[tuple[int, str]]]] = {}
ids = itertools.count(1)


def _agent(request: Request) -> int | None:
    raw = request.query_params.get("agent", "")
    return int(raw) if raw.isdigit() else None


async def events(request: Request) -> Response:
    agent = _agent(request)
    if agent is None:
        return JSONResponse({"detail": "agent=N"}, status_code=422)
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    subscribers.setdefault(agent, set()).add(queue)

    async def stream() -> AsyncIterator[str]:
        try:
            yield f'retry: 2000\nevent: state\ndata: {{"id": {agent}, "state": "available"}}\n\n'
            while True:
                try:
                    event_id, data = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"id: {event_id}\nevent: screenpop\ndata: {data}\n\n"
        finally:
            subscribers[agent].discard(queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def pop(request: Request) -> Response:
    agent = _agent(request)
    body = (await request.body()).decode()
    if agent is None or not body:
        return JSONResponse({"detail": "agent=N and a JSON body"}, status_code=422)
    event_id = next(ids)
    for queue in subscribers.get(agent, ()):
        queue.put_nowait((event_id, body))
    return Response(DIAL, media_type="text/xml")


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route("/events", events, methods=["GET"]),
    Route("/pop", pop, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    raise_open_files_limit()
    # The same call ivr.cli._serve makes for one worker (access log off at "warning").
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)


if __name__ == "__main__":
    main()
