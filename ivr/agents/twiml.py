"""TwiML that connects a dequeued caller to an agent (the twilio package's VoiceResponse)."""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

AGENT_DIAL_URL = "/twilio/agent-dial"
AGENT_LEG_URL = "/twilio/agent-leg"


def dial_agent(r: VoiceResponse, action: str, offer_id: int, reach_kind: str, target: str,
               timeout: int) -> None:
    """Add ``<Dial answerOnBridge>`` to the agent, whose leg's status callbacks go to
    ``/twilio/agent-leg?a=OFFER``; ``action``: where the Dial's outcome is posted."""
    d = r.dial(action=action, method="POST", timeout=timeout, answer_on_bridge=True)
    callbacks = {"status_callback": f"{AGENT_LEG_URL}?a={offer_id}",
                 "status_callback_event": "answered completed",
                 "status_callback_method": "POST"}
    if reach_kind == "number":
        d.number(target, **callbacks)
    elif reach_kind == "sip":
        d.sip(target, **callbacks)
    else:
        d.client(target, **callbacks)


def connect_twiml(offer_id: int, reach_kind: str, target: str, timeout: int) -> str:
    """``<Dial>`` the agent. ``answerOnBridge``: the caller hears ringing, not silence, until
    the agent answers. The agent leg's ``answered`` status callback marks the agent on the
    call; the Dial ``action`` says how it ended (not answered: back to the queue)."""
    r = VoiceResponse()
    dial_agent(r, f"{AGENT_DIAL_URL}?a={offer_id}", offer_id, reach_kind, target, timeout)
    return str(r.to_xml())
