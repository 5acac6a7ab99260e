"""Tables only: SQLAlchemy 2 typed models, no Flask imports."""

from __future__ import annotations

from idp.models.audit import AuditEvent
from idp.models.limits import FailureCounter
from idp.models.login import LoginSession
from idp.models.login import LogoutDelivery
from idp.models.login import SessionParticipant
from idp.models.mfa import RecoveryCode
from idp.models.mfa import TotpFactor
from idp.models.oidc import AuthorizationCode
from idp.models.oidc import Consent
from idp.models.oidc import OAuthClient
from idp.models.oidc import OAuthToken
from idp.models.oidc import ReplayEntry
from idp.models.passkey import Passkey
from idp.models.passkey import PasskeyChallenge
from idp.models.saml import SamlPersistentId
from idp.models.saml import SamlSessionIndex
from idp.models.saml import ServiceProvider
from idp.models.token import PersonalAccessToken
from idp.models.token import SecurityNotice
from idp.models.token import TokenPolicy
from idp.models.token import TokenUsage
from idp.models.user import Group
from idp.models.user import User
from idp.models.user import user_group

__all__ = [
    "AuditEvent",
    "AuthorizationCode",
    "Consent",
    "FailureCounter",
    "Group",
    "LoginSession",
    "LogoutDelivery",
    "OAuthClient",
    "OAuthToken",
    "Passkey",
    "PasskeyChallenge",
    "PersonalAccessToken",
    "RecoveryCode",
    "ReplayEntry",
    "SamlPersistentId",
    "SamlSessionIndex",
    "SecurityNotice",
    "ServiceProvider",
    "SessionParticipant",
    "TokenPolicy",
    "TokenUsage",
    "TotpFactor",
    "User",
    "user_group",
]
