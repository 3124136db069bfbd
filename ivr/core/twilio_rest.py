"""The twilio REST client as every feature builds it: a timeout on every request, an
optional stand-in base URL (tests, staging), and how to tell whether a failed request may
still have reached Twilio."""

from __future__ import annotations

from typing import Any

#: Seconds any request to Twilio's REST API may take (the twilio client has no default:
#: a hung request would stop routing in its process). Keep IVR_CALLBACK_LEASE_SECONDS
#: well above it, so a claim is not taken over while its create is still being answered.
TWILIO_HTTP_TIMEOUT = 10.0


def uncertain(exc: BaseException) -> bool:
    """Whether a failed request may still have reached Twilio: a timeout, a dropped
    connection or a 5xx (unlike a 4xx, which Twilio refused and did not act on)."""
    from twilio.base.exceptions import TwilioRestException  # noqa: PLC0415

    if isinstance(exc, TwilioRestException):
        return bool(exc.status >= 500)
    return isinstance(exc, OSError)  # requests' and socket errors (timeouts included)



def twilio_client(account_sid: str, auth_token: str, *, http_client: Any = None,
                  api_base_url: str | None = None) -> Any:
    """The twilio REST client; ``api_base_url`` sends its requests to a stand-in (tests,
    staging) instead of https://api.twilio.com."""
    from twilio.rest import Client  # noqa: PLC0415  (heavy import, only when used)

    if http_client is None:
        if api_base_url:
            http_client = RebasedHttpClient(api_base_url)
        else:
            from twilio.http.http_client import TwilioHttpClient  # noqa: PLC0415

            http_client = TwilioHttpClient(timeout=TWILIO_HTTP_TIMEOUT)
    return Client(account_sid, auth_token, http_client=http_client)


def RebasedHttpClient(base: str) -> Any:  # a class made on first use (twilio imports late)
    from twilio.http.http_client import TwilioHttpClient  # noqa: PLC0415

    class _Rebased(TwilioHttpClient):  # type: ignore[misc]
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            for prefix in ("https://api.twilio.com", "https://api.us1.twilio.com"):
                if url.startswith(prefix):
                    url = base.rstrip("/") + url[len(prefix):]
            return super().request(method, url, *args, **kwargs)

    return _Rebased(timeout=TWILIO_HTTP_TIMEOUT)
