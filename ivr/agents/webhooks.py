"""Twilio's requests for a queued caller and the agent's leg: the wait loop (``wait``,
Twilio's ``waitUrl``), a caller dequeued by the REST API (``connect``), the ``<Dial>`` to the
agent ended (``agent-dial``) and the agent leg's status callbacks (``agent-leg``)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ivr.calls import twiml
from ivr.calls.webhook import TwilioRequest, failed, number, routes, safe_route, xml
from ivr.services import web

log = logging.getLogger("ivr.webhooks")


async def wait(request: Request, tw: TwilioRequest) -> Response:
    """The wait experience of a queue (Twilio's waitUrl, played in a loop). The first round
    puts the caller in the routing queue; once an agent is reserved it lets them go."""
    settings = web(request).settings
    lang = tw.query.get("lang", "he-IL")
    name = tw.query.get("q", "")[:64]
    if tw.call_sid and name:
        try:
            agents = web(request).agents
            out = await web(request).db.run(agents.waiting, tw.call_sid, name,
                                                 tw.params)
            await web(request).after_commit(out)
            if out.twiml is not None:
                return xml(out.twiml)
        except LookupError:  # no such call (its /voice was refused): hold, no traceback
            log.warning("wait loop of an unknown call; holding call=%s", tw.call_sid)
        except Exception:
            log.exception("queue bookkeeping failed; the caller keeps holding call=%s",
                          tw.call_sid)
            failed(request)
    return xml(twiml.hold(lang, tw.params.get("QueuePosition"), settings.hold_music_url))


def _offer_id(tw: TwilioRequest) -> int | None:
    return number(tw.query.get("a", ""), 12)


async def connect(request: Request, tw: TwilioRequest) -> Response:
    """Twilio runs this for a caller dequeued by the REST API: dial the reserved agent."""
    agents = web(request).agents
    try:
        out = await web(request).db.run(agents.connect, tw.call_sid, _offer_id(tw))
        await web(request).after_commit(out)
        return xml(out.twiml or twiml.empty())
    except Exception:
        log.exception("connect failed call=%s", tw.call_sid)
        return safe_route(request)


async def agent_dial(request: Request, tw: TwilioRequest) -> Response:
    """The ``<Dial>`` to an agent ended: after a conversation the post-call survey (a
    caller still on the line: ``CallStatus``) or the hang-up, else back to the queue (the
    caller keeps their place; the agent who did not answer goes offline)."""
    agents = web(request).agents
    offer = _offer_id(tw)
    if offer is None:
        log.warning("agent dial result without an offer id call=%s", tw.call_sid)
        return safe_route(request)
    try:
        out = await web(request).db.run(agents.agent_dial_ended, offer, tw.call_sid,
                                             tw.params.get("DialCallStatus", "failed"),
                                             tw.params.get("CallStatus", "in-progress"))
        await web(request).after_commit(out)
        return xml(out.twiml or twiml.empty())
    except Exception:
        log.exception("agent dial result failed call=%s", tw.call_sid)
        return safe_route(request)


async def agent_leg(request: Request, tw: TwilioRequest) -> Response:
    """Status callbacks of the agent's leg (answered, completed)."""
    agents = web(request).agents
    offer = _offer_id(tw)
    if offer is not None:
        try:
            out = await web(request).db.run(agents.agent_leg, offer, tw.params)
            await web(request).after_commit(out)
        except Exception:
            log.exception("agent leg status not recorded offer=%s", offer)
            failed(request)
            return PlainTextResponse("status not recorded; retry", status_code=503)
    return xml(twiml.empty())


ROUTES = routes(wait, connect, agent_dial, agent_leg)
