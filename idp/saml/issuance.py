"""Issue assertions: choose the NameID, build, sign (and maybe encrypt) the Response, record it.

``build_*`` are pure (data and ``now`` in, XML out); ``issue_*`` also persist and audit
(Profiles §4.1.4.2, SAML Core §3.4.1.1, §6).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from lxml import etree

from idp import audit
from idp import db
from idp.errors import SamlStatusError
from idp.models.login import LoginSession
from idp.models.saml import ServiceProvider
from idp.models.user import User
from idp.saml import NAMEID_PERSISTENT
from idp.saml import NAMEID_TRANSIENT
from idp.saml import STATUS_INVALID_NAMEID_POLICY
from idp.saml import responses
from idp.saml import signing
from idp.saml import storage
from idp.saml.pending import PendingRequest
from idp.saml.responses import SamlAttribute
from idp.sessions import logout as session_logout
from idp.sessions import service as sessions


def encrypts_assertion(sp: ServiceProvider) -> bool:
    """Return whether ``sp`` gets its assertions encrypted (it asked and published a key)."""
    return sp.encrypt_assertion and bool(sp.encryption_certificates)


def build_sso_response(
    *,
    sp: ServiceProvider,
    login: LoginSession,
    pending: PendingRequest,
    name_id: str,
    name_id_format: str,
    session_index: str,
    authn_context: str,
    attributes: Sequence[SamlAttribute],
    idp_entity_id: str,
    signing_key: tuple[str, str],
    now: datetime,
) -> etree._Element:
    """Build the signed Response with one Assertion, signed and encrypted as ``sp`` asks."""
    assertion = responses.build_assertion(
        idp_entity_id=idp_entity_id,
        sp_entity_id=sp.entity_id,
        acs_url=pending.acs_url,
        in_response_to=pending.request_id,
        name_id=name_id,
        name_id_format=name_id_format,
        session_index=session_index,
        authn_instant=login.auth_time,
        authn_context=authn_context,
        session_not_on_or_after=login.expires_at,
        attributes=attributes,
        now=now,
    )
    if sp.sign_assertion or sp.want_assertions_signed:
        signing.sign(assertion, *signing_key)
    if encrypts_assertion(sp):
        assertion = signing.encrypt_assertion(assertion, sp.encryption_certificates[0])
    response = responses.build_response(
        idp_entity_id=idp_entity_id,
        destination=pending.acs_url,
        in_response_to=pending.request_id,
        now=now,
        assertion=assertion,
    )
    if sp.sign_response:
        signing.sign(response, *signing_key)
    return response


def build_status_response(
    *,
    pending: PendingRequest,
    error: SamlStatusError,
    idp_entity_id: str,
    signing_key: tuple[str, str],
    now: datetime,
) -> etree._Element:
    """Build the signed error Response that answers ``pending`` with ``error`` (Core §3.2.2)."""
    response = responses.build_response(
        idp_entity_id=idp_entity_id,
        destination=pending.acs_url,
        in_response_to=pending.request_id,
        now=now,
        status=error.status,
        message=str(error),
    )
    signing.sign(response, *signing_key)
    return response


def _name_id(
    sp: ServiceProvider, user: User, pending: PendingRequest, now: datetime
) -> tuple[str, str]:
    """Return ``(NameID, Format)`` for this SP, honouring NameIDPolicy (SAML Core §3.4.1.1)."""
    chosen = responses.choose_name_id_format(
        pending.name_id_format, setting=sp.name_id_format, released=sp.attributes
    )
    if chosen == NAMEID_PERSISTENT:
        existing = storage.get_persistent_id(user.id, sp.entity_id)
        if existing is not None:
            return existing, chosen
        if pending.allow_create is False:
            raise SamlStatusError(
                STATUS_INVALID_NAMEID_POLICY, "No identifier exists and AllowCreate is false."
            )
        return storage.create_persistent_id(user.id, sp.entity_id, now), chosen
    if chosen == NAMEID_TRANSIENT:
        # Fresh for every assertion: opaque, linking neither two logins nor two SPs.
        return f"_{secrets.token_hex(20)}", chosen
    # emailAddress and unspecified: the e-mail address, which is the username here.
    return user.email, chosen


def needs_step_up(login: LoginSession, pending: PendingRequest) -> bool:
    """Return whether ``pending`` asks for more than ``login`` has, and a second factor helps."""
    return responses.needs_second_factor(
        responses.authn_context_of(login.amr, login.acr), pending.authn_contexts, pending.comparison
    )


def issue_response(
    sp: ServiceProvider, login: LoginSession, pending: PendingRequest, *, idp_entity_id: str
) -> bytes:
    """Issue the Response to ``pending``: record the SessionIndex, join the logout, audit; commit.

    Raises:
        SamlStatusError: the login cannot meet the request (NoAuthnContext,
            InvalidNameIDPolicy); nothing is stored.

    """
    now = db.now()
    user = login.user
    authn_context = responses.choose_authn_context(
        responses.authn_context_of(login.amr, login.acr),
        pending.authn_contexts,
        pending.comparison,
    )
    name_id, name_id_format = _name_id(sp, user, pending, now)
    record = storage.record_session_index(sp, login, name_id, name_id_format, now)
    response = build_sso_response(
        sp=sp,
        login=login,
        pending=pending,
        name_id=name_id,
        name_id_format=name_id_format,
        session_index=record.session_index,
        authn_context=authn_context,
        attributes=responses.release_attributes(user, sp.attributes),
        idp_entity_id=idp_entity_id,
        signing_key=signing.signing_key(now),
        now=now,
    )
    session_logout.join(login, "saml", sp.entity_id)
    audit.record(
        "assertion_issued",
        user_id=user.id,
        sid=login.sid,
        rp=sp.entity_id,
        name_id_format=name_id_format,
        authn_context=authn_context,
        encrypted=encrypts_assertion(sp),
        idp_initiated=pending.request_id is None,
    )
    db.get_session().commit()
    return signing.serialize(response)


def issue_status_response(
    sp: ServiceProvider, pending: PendingRequest, error: SamlStatusError, *, idp_entity_id: str
) -> bytes:
    """Issue the error Response to ``pending``; nothing but the audit line is stored; commit."""
    database = db.get_session()
    database.rollback()
    now = db.now()
    response = build_status_response(
        pending=pending,
        error=error,
        idp_entity_id=idp_entity_id,
        signing_key=signing.signing_key(now),
        now=now,
    )
    login = sessions.current_login()
    audit.record(
        "saml_request_refused",
        user_id=login.user_id if login else None,
        sid=login.sid if login else None,
        rp=sp.entity_id,
        status=error.status,
        reason=str(error),
    )
    database.commit()
    return signing.serialize(response)
