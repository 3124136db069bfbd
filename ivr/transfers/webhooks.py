"""Twilio's requests about a call on a conference: the first agent's leg
(``conference-agent``), the caller's ``<Dial><Conference>`` ended (``conference-end``), the
conference's status callbacks (``conference-events``), the caller's wait and hold music
(``conference-wait``), a transfer's new leg (``transfer-leg``), a caller moved into a
transfer's queue (``transfer-enter``) or back to the head of theirs (``transfer-back``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ivr.agents.ports import Outcome
from ivr.calls import twiml
from ivr.calls.webhook import TwilioRequest, failed, number, routes, safe_route, xml
from ivr.services import web
from ivr.transfers.service import TransferService
from ivr.transfers.twiml import BACK

log = logging.getLogger("ivr.webhooks")


def _service(request: Request) -> TransferService:
    service = web(request).services.transfers
    assert service is not None  # build_services always builds it
    return service


def _sid(tw: TwilioRequest) -> str:
    return tw.query.get("c", "")[:64]


async def _status(request: Request, fn: Callable[[int, dict[str, str]], Outcome],
                  key: int | None, tw: TwilioRequest,
                  ) -> Response:
    """A status callback: recorded, or 503 so that Twilio retries it."""
    if key is not None:
        try:
            out: Outcome = await web(request).db.run(fn, key, tw.params)
            await web(request).after_commit(out)
        except Exception:
            log.exception("conference status not recorded key=%s", key)
            failed(request)
            return PlainTextResponse("status not recorded; retry", status_code=503)
    return xml(twiml.empty())


async def conference_agent(request: Request, tw: TwilioRequest) -> Response:
    """Status callbacks of the agent leg rung into the call's conference."""
    return await _status(request, _service(request).first_leg,
                         number(tw.query.get("a", ""), 12), tw)


async def transfer_leg(request: Request, tw: TwilioRequest) -> Response:
    """Status callbacks of a transfer's new party (second agent, outside number)."""
    return await _status(request, _service(request).transfer_leg,
                         number(tw.query.get("t", ""), 12), tw)


async def conference_end(request: Request, tw: TwilioRequest) -> Response:
    """The caller's conference is over: hang up (or the survey) after a conversation."""
    try:
        out = await web(request).db.run(_service(request).conference_end, _sid(tw),
                                        tw.params)
        await web(request).after_commit(out)
        return xml(out.twiml or twiml.empty())
    except Exception:
        log.exception("conference end failed call=%s", _sid(tw))
        return safe_route(request)


async def conference_events(request: Request, tw: TwilioRequest) -> Response:
    try:
        out = await web(request).db.run(_service(request).conference_event, _sid(tw),
                                        tw.params)
        await web(request).after_commit(out)
    except Exception:
        log.exception("conference event not recorded call=%s", _sid(tw))
        failed(request)
        return PlainTextResponse("status not recorded; retry", status_code=503)
    return xml(twiml.empty())


async def conference_wait(request: Request, tw: TwilioRequest) -> Response:
    """The caller's wait URL (before an agent joins) and hold URL (held): the queue's hold
    music; the stand-in's pending redirect of the caller."""
    try:
        return xml(await web(request).db.run(_service(request).waiting_in_conference,
                                             _sid(tw)))
    except Exception:
        log.exception("conference wait failed call=%s", _sid(tw))
        failed(request)
        settings = web(request).settings
        return xml(twiml.hold("he-IL", None, settings.hold_music_url))


async def transfer_enter(request: Request, tw: TwilioRequest) -> Response:
    transfer = number(tw.query.get("t", ""), 12)
    if transfer is None:
        return safe_route(request)
    try:
        body, out = await web(request).db.run(_service(request).enter_queue, transfer)
        await web(request).after_commit(out)
        return xml(body)
    except Exception:
        log.exception("transfer into a queue failed transfer=%s", transfer)
        return safe_route(request)


async def transfer_back(request: Request, tw: TwilioRequest) -> Response:
    why = tw.query.get("why", "failed")
    why = why if why in BACK["en-US"] else "failed"
    try:
        body, out = await web(request).db.run(_service(request).back_to_queue, _sid(tw), why)
        await web(request).after_commit(out)
        return xml(body)
    except Exception:
        log.exception("caller back to the queue failed call=%s", _sid(tw))
        return safe_route(request)


ROUTES = routes(conference_agent, transfer_leg, conference_end, conference_events,
                conference_wait, transfer_enter, transfer_back)
