"""Twilio request signatures, checked with the twilio package's RequestValidator.

Two schemes: the account auth token (HMAC-SHA1, ``X-Twilio-Signature``), and SharedKey
signing, announced by ``X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=<alg>``,
where the secret of the named key replaces the auth token and the algorithm may be
HMAC_SHA256. The URL checked is the one Twilio called: with ``IVR_PUBLIC_URL`` set it is
rebuilt from that setting, never from the Host header a proxy may have rewritten; without
it, from the request's scheme and Host, which ``ivr.core.proxies`` takes from
``X-Forwarded-*`` only when a trusted proxy (``IVR_TRUSTED_PROXIES``) sent them.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from ivr.core.settings import Settings

log = logging.getLogger(__name__)


def public_url_warning(settings: Settings) -> str | None:
    """Why the URL signatures are checked against can be forged here, or None. Without
    IVR_PUBLIC_URL it is rebuilt from the request's Host (and X-Forwarded-* from trusted
    proxies): a request Twilio signed for another deployment with the same auth token is
    accepted with that deployment's Host. Only the demo's configuration (SQLite and no
    Twilio account SID: it answers the simulator, not Twilio) goes without a warning."""
    if settings.public_url or not settings.validate_signatures:
        return None
    if settings.is_sqlite and not settings.twilio_account_sid:
        return None
    return ("IVR_PUBLIC_URL is not set: Twilio signatures are checked against a URL rebuilt "
            "from the request's Host header, so a request signed for another deployment "
            "with the same auth token is accepted here with that deployment's Host; set "
            "IVR_PUBLIC_URL to the URL Twilio calls")


def shared_key_id(settings_header: str) -> str | None:
    for part in settings_header.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "key" and value.strip():
            return value.strip()
    return None


class SignatureChecker:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.validate_signatures
        token = settings.twilio_auth_token.get_secret_value()
        self._token = RequestValidator(token) if token else None
        self._shared = {kid: RequestValidator(secret.get_secret_value())
                        for kid, secret in settings.twilio_shared_keys.items()}
        self.public_url = settings.public_url

    def url(self, scheme_host: str, path: str, query: str) -> str:
        base = self.public_url or scheme_host
        return f"{base}{path}?{query}" if query else f"{base}{path}"

    def verify(self, url: str, params: dict[str, str], headers: Mapping[str, str]) -> bool:
        """``headers`` with lower-case keys (Starlette's Headers look up case-insensitively)."""
        if not self.enabled:
            return True
        signature = headers.get(SIGNATURE_HEADER.lower(), "")
        if not signature:
            return False
        settings_header = headers.get(SIGNATURE_SETTINGS_HEADER.lower(), "")
        if settings_header:
            kid = shared_key_id(settings_header)
            validator = self._shared.get(kid or "")
            if validator is None:
                log.warning("webhook signed with an unknown shared key %r", kid)
                return False
            algorithm = get_signature_algorithm(settings_header)
            if algorithm.upper() not in ("HMAC_SHA1", "HMAC_SHA256"):
                return bool(validator.validate(url, params, signature, algorithm))  # logs, False
            return _valid(validator, url, params, signature, algorithm)
        if self._token is None:
            return False
        return _valid(self._token, url, params, signature, None)


class _Form(dict[str, str]):
    """Form fields as RequestValidator reads them: it asks for ``getall`` first, and a plain
    dict makes it raise and catch two exceptions per field."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


def _valid(validator: RequestValidator, url: str, params: dict[str, str], signature: str,
           algorithm: str | None) -> bool:
    """The URL exactly as given first (one HMAC); then RequestValidator.validate, which also
    tries the URL with and without the default port, as Twilio's signing varies there."""
    params = _Form(params)
    expected = validator.compute_signature(url, params, algorithm)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return bool(validator.validate(url, params, signature, algorithm))
