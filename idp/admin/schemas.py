"""Admin API bodies and query strings as Pydantic models: validation and the OpenAPI schemas.

Over 400 lines: declarations only (one model per body, query and answer), no logic.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import AfterValidator
from pydantic import AwareDatetime
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StringConstraints

if TYPE_CHECKING:
    from idp import models
    from idp.keys.store import KeyInfo

# No control characters anywhere: PostgreSQL cannot store NUL, and no field needs one.
_CLEAN = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str, StringConstraints(pattern=_CLEAN, max_length=2000)]
Name = Annotated[str, StringConstraints(pattern=_CLEAN, min_length=1, max_length=200)]
PartName = Annotated[str, StringConstraints(pattern=_CLEAN, max_length=100)]


def _email(value: str) -> str:
    from idp.errors import InvalidInputError
    from idp.users.service import normalize_email

    try:
        return normalize_email(value)
    except InvalidInputError:
        raise ValueError("not a valid e-mail address") from None


Email = Annotated[
    str, StringConstraints(pattern=_CLEAN, min_length=3, max_length=320), AfterValidator(_email)
]
Uri = Annotated[str, StringConstraints(pattern=_CLEAN, min_length=1, max_length=2000)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
ScopeName = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,64}$")]
Cursor = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Limit = Annotated[int, Field(ge=1, le=100, description="Items per page (default 50).")]


class Input(BaseModel):
    """A JSON request body: unknown fields and loosely typed values ("yes" for true) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """A query string: unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore")

    cursor: Cursor | None = Field(None, description="The `next` of the previous page.")
    limit: Limit = 50


class FieldError(BaseModel):
    field: str = Field(description="The field (dotted path) or parameter at fault.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(description="Always `about:blank`: the status says what went wrong.")
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(
        None, description="Present on validation errors: each field at fault."
    )


# -- users -----------------------------------------------------------------------------------


class User(BaseModel):
    id: int
    email: str
    name: str
    given_name: str | None
    family_name: str | None
    admin: bool
    disabled: bool
    locked_until: datetime | None = Field(
        description=(
            "While too many failed logins lock the account (brute-force defence), when the "
            "lock ends; null when it is not locked. `POST /users/{id}/unlock` lifts it."
        )
    )
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, user: models.User, locked_until: datetime | None = None) -> User:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            given_name=user.given_name,
            family_name=user.family_name,
            admin=user.is_admin,
            disabled=user.is_disabled,
            locked_until=locked_until,
            created=user.created_at,
            updated=user.updated_at,
        )


class UserList(BaseModel):
    items: list[User]
    next: str | None


class UserQuery(Query):
    q: Text | None = Field(None, description="Only users whose e-mail or name contains this.")


class UserCreate(Input):
    email: Email
    name: Name
    password: Password | None = Field(None, description="Without one, no password login.")
    admin: bool = False
    given_name: PartName | None = None
    family_name: PartName | None = None


class UserUpdate(Input):
    email: Email | None = None
    name: Name | None = None
    given_name: PartName | None = None
    family_name: PartName | None = None
    admin: bool | None = None
    disabled: bool | None = Field(
        None, description="true ends every session of the user at every app."
    )


class PasswordReset(Input):
    password: Password


# -- clients ---------------------------------------------------------------------------------

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


class Client(BaseModel):
    client_id: str
    client_name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    backchannel_logout_uri: str | None
    frontchannel_logout_uri: str | None
    token_endpoint_auth_method: str
    grant_types: list[str]
    scope: list[str]
    trusted: bool
    disabled: bool
    resource_server: bool
    service_account: bool
    created: datetime

    @classmethod
    def fields_of(cls, client: models.OAuthClient) -> dict[str, Any]:
        return {
            "client_id": client.client_id,
            "client_name": client.client_name,
            "redirect_uris": list(client.redirect_uris),
            "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
            "backchannel_logout_uri": client.backchannel_logout_uri,
            "frontchannel_logout_uri": client.frontchannel_logout_uri,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "grant_types": list(client.grant_types),
            "scope": client.scope.split(),
            "trusted": client.is_trusted,
            "disabled": client.is_disabled,
            "resource_server": client.is_resource_server,
            "service_account": client.is_service_account,
            "created": client.created_at,
        }

    @classmethod
    def of(cls, client: models.OAuthClient) -> Client:
        return cls(**cls.fields_of(client))


class ClientList(BaseModel):
    items: list[Client]
    next: str | None


class ClientCreate(Input):
    client_name: Name
    redirect_uris: list[Uri] = Field(default_factory=list, max_length=50)
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"  # noqa: S105 (a method name)
    trusted: bool = False
    resource_server: bool = False
    service_account: bool = Field(
        False, description="client_credentials only, for exactly `scope` (e.g. `admin`)."
    )
    scope: list[ScopeName] | None = Field(
        None, max_length=50, description="Default: openid profile email groups offline_access."
    )
    post_logout_redirect_uris: list[Uri] = Field(default_factory=list, max_length=50)
    backchannel_logout_uri: Uri | None = None
    frontchannel_logout_uri: Uri | None = None
    jwks_uri: Uri | None = None
    id_token_signed_response_alg: Literal["RS256", "ES256"] = "RS256"  # noqa: S105
    subject_type: Literal["public", "pairwise"] = "public"
    client_id: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")] | None = None


class ClientCreated(Client):
    client_secret: str | None = Field(description="Shown once; null for secretless clients.")


class ClientUpdate(Input):
    client_name: Name | None = None
    redirect_uris: list[Uri] | None = Field(None, max_length=50)
    post_logout_redirect_uris: list[Uri] | None = Field(None, max_length=50)
    backchannel_logout_uri: Uri | None = Field(None, description="null removes it.")
    frontchannel_logout_uri: Uri | None = Field(None, description="null removes it.")
    scope: list[ScopeName] | None = Field(None, max_length=50)
    trusted: bool | None = None
    disabled: bool | None = Field(None, description="true also revokes the client's tokens.")


class ClientSecret(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; the previous secret stops working.")


# -- service providers ---------------------------------------------------------------------


class ServiceProvider(BaseModel):
    id: int
    entity_id: str
    name: str
    name_id_format: str
    name_id_formats: list[str] = Field(description="The formats the SP's metadata lists.")
    attributes: list[str] | None = Field(description="Released claims; null releases all.")
    acs_urls: list[str]
    disabled: bool
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, sp: models.ServiceProvider) -> ServiceProvider:
        return cls(
            id=sp.id,
            entity_id=sp.entity_id,
            name=sp.name,
            name_id_format=sp.name_id_format,
            name_id_formats=list(sp.name_id_formats),
            attributes=None if sp.attributes is None else list(sp.attributes),
            acs_urls=[endpoint["location"] for endpoint in sp.acs_endpoints],
            disabled=sp.is_disabled,
            created=sp.created_at,
            updated=sp.updated_at,
        )


class ServiceProviderList(BaseModel):
    items: list[ServiceProvider]
    next: str | None


class ServiceProviderUpdate(Input):
    attributes: list[Name] | None = Field(
        None,
        max_length=50,
        description="Claims or SAML attribute names to release; null releases all of them.",
    )
    name_id_format: Name | None = Field(
        None, description="A NameID format URI or persistent, transient, emailAddress."
    )


# -- sessions --------------------------------------------------------------------------------


class Participant(BaseModel):
    protocol: Literal["oidc", "saml"]
    rp: str = Field(description="The client_id or SP entity ID.")
    joined: datetime


class Session(BaseModel):
    """A live login session: the fields of ``idp session list --json``."""

    id: str = Field(description="The session's sid, as in its ID tokens.")
    user: str = Field(description="The user's e-mail address.")
    created: datetime
    last_seen: datetime
    expires: datetime
    ip: str | None
    user_agent: str | None
    participants: list[Participant]


class SessionList(BaseModel):
    items: list[Session]
    next: str | None


class SessionQuery(Query):
    user: Email | None = Field(None, description="Only this user's sessions (e-mail).")


class UserSessionsQuery(BaseModel):
    user: Email = Field(description="End every session of this user (e-mail).")


class SessionsEnded(BaseModel):
    ended: int = Field(description="How many live sessions ended.")


# -- personal access tokens --------------------------------------------------------------------


class Token(BaseModel):
    """A personal access token: the fields of ``idp token list --json`` (never the secret)."""

    id: int
    name: str
    user: str = Field(description="The owner's e-mail address.")
    prefix: str = Field(description="The token's first characters, to recognise it.")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None
    revoked_at: datetime | None


class TokenList(BaseModel):
    items: list[Token]
    next: str | None


class TokenQuery(Query):
    user: Email | None = Field(None, description="Only this user's tokens (e-mail).")


class TokenUsage(BaseModel):
    """How often a token was used from one IP network in one hour, for one resource."""

    network: str = Field(description="The /24 (IPv4) or /48 (IPv6) the uses came from.")
    hour: datetime
    resource: str = Field(
        description="What was called (userinfo, admin_api) or the client that introspected it."
    )
    introspected: bool
    count: int
    first_seen: datetime
    last_seen: datetime
    ip: str = Field(description="The last address the token was used from.")
    user_agent: str | None


class TokenUsageList(BaseModel):
    items: list[TokenUsage]


# -- keys ------------------------------------------------------------------------------------


class Key(BaseModel):
    kid: str
    kind: str
    state: Literal["next", "active", "retiring", "retired"]
    created: datetime
    activates: datetime

    @classmethod
    def of(cls, info: KeyInfo) -> Key:
        return cls(
            kid=info.kid,
            kind=info.kind,
            state=info.state,
            created=info.created_at,
            activates=info.activates_at,
        )


class KeyList(BaseModel):
    items: list[Key]
    next: None = Field(None, description="Always null: every key is on one page.")


class KeyRotate(Input):
    immediate: bool = Field(
        False, description="Sign with the new keys at once (after a compromise)."
    )


# -- audit events ----------------------------------------------------------------------------


class AuditEvent(BaseModel):
    id: int
    at: datetime
    type: str
    user_id: int | None
    sid: str | None
    rp: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] = Field(
        description="Event details; actor_user_id or actor_client_id names the acting admin."
    )

    @classmethod
    def of(cls, row: models.AuditEvent) -> AuditEvent:
        return cls(
            id=row.id,
            at=row.at,
            type=row.event,
            user_id=row.user_id,
            sid=row.sid,
            rp=row.rp,
            ip=row.ip,
            user_agent=row.user_agent,
            details=dict(row.details or {}),
        )


class AuditEventList(BaseModel):
    items: list[AuditEvent]
    next: str | None


class AuditQuery(Query):
    user: Text | None = Field(None, description="A user id, or a (current) user's e-mail.")
    type: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")] | None = None
    since: AwareDatetime | None = Field(None, description="Events at or after (RFC 3339).")
    until: AwareDatetime | None = Field(None, description="Events before (RFC 3339).")
    format: Literal["json", "jsonl"] | None = Field(
        None, description="jsonl: every matching event as JSON Lines (like Accept)."
    )
