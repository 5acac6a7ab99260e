"""What every parsed message from an SP goes through: signature, Destination, age, one use.

Signatures by either binding (Bindings §3.4.4.1, §3.5.4; SAML Core §5), Destination
(Bindings §3.5.5.2), and replay of request IDs (Profiles §4.1.4.5).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from lxml import etree

from idp import replay
from idp.errors import SamlRequestError
from idp.models.saml import ServiceProvider
from idp.saml import BINDING_REDIRECT
from idp.saml import requests
from idp.saml import signing
from idp.saml.bindings import InboundMessage


def verify_signature(
    sp: ServiceProvider, message: InboundMessage, root: etree._Element, *, required: bool
) -> None:
    """Verify the message's signature, whatever the binding; refuse it unsigned if required.

    Raises:
        SamlRequestError: the signature is misplaced, weak, missing or does not verify.

    """
    embedded = signing.has_signature(root)
    # Bindings §3.4.4.1: an XML signature "MUST be removed" before Redirect encoding.
    if embedded and message.binding == BINDING_REDIRECT:
        raise SamlRequestError("A Redirect-bound message must not embed an XML signature.")
    if message.signature is not None and message.signed_octets is not None:
        signing.verify_redirect_signature(
            message.signed_octets, message.signature, message.sig_alg, sp.signing_certificates
        )
    elif embedded:
        signing.verify_enveloped_signature(root, sp.signing_certificates)
    elif required:
        raise SamlRequestError("The request must be signed.")


def validate_received(
    *, destination: str | None, issue_instant: datetime, endpoint: str, now: datetime
) -> None:
    """Refuse a message addressed to another endpoint, issued in the future or too long ago.

    Raises:
        SamlRequestError: it is misaddressed, stale or from the future.

    """
    requests.validate_destination(destination, endpoint)
    requests.validate_fresh(issue_instant, now)


def _replay_key(kind: str, issuer: str, message_id: str) -> str:
    digest = hashlib.sha256(f"{issuer}\n{message_id}".encode()).hexdigest()
    return f"saml:{kind}:{digest}"


def remember_request(kind: str, issuer: str, message_id: str, issue_instant: datetime) -> None:
    """Record a request ID of ``issuer`` for as long as the request is fresh; refuse a replay.

    Raises:
        SamlRequestError: this request was already received.

    """
    expires_at = issue_instant + requests.MESSAGE_MAX_AGE + requests.CLOCK_SKEW
    if not replay.remember_once(_replay_key(kind, issuer, message_id), expires_at):
        raise SamlRequestError("This request was already used; start again from the application.")
