"""The admin API's users: list, create, read, update, delete, reset, unlock."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from idp.admin import schemas
from idp.admin.api.routing import page_of
from idp.admin.api.routing import route
from idp.mfa import service as mfa
from idp.users import service as users

if TYPE_CHECKING:
    from idp.models.user import User


USER: dict[str, Any] = {"path_params": {"id": int}, "tag": "users"}


@route(
    "GET", "/users", "List users", query=schemas.UserQuery, response=schemas.UserList, tag="users"
)
def list_users(query: schemas.UserQuery) -> schemas.UserList:
    page, cursor = page_of(
        query, lambda after, limit: users.list_users(search=query.q, after=after, limit=limit)
    )
    locks = users.get_lockouts(page)
    items = [schemas.User.of(user, locks.get(user.id)) for user in page]
    return schemas.UserList(items=items, next=cursor)


def _user(user: User) -> schemas.User:
    """Return the API's view of ``user``, its lockout read from the brute-force counters."""
    return schemas.User.of(user, users.get_lockouts([user]).get(user.id))


@route(
    "POST",
    "/users",
    "Create a user",
    status=201,
    body=schemas.UserCreate,
    response=schemas.User,
    errors=(409,),
    tag="users",
)
def create_user(body: schemas.UserCreate) -> schemas.User:
    user = users.add_user(
        body.email,
        name=body.name,
        password=body.password,
        is_admin=body.admin,
        given_name=body.given_name,
        family_name=body.family_name,
    )
    # An address that was tried before it existed may already be locked: say so.
    return _user(user)


@route("GET", "/users/{id}", "Get a user", response=schemas.User, **USER)
def get_user(id: int) -> schemas.User:
    return _user(users.require_user(id))


@route(
    "PATCH",
    "/users/{id}",
    "Update a user; disabled: true ends their sessions everywhere",
    body=schemas.UserUpdate,
    response=schemas.User,
    errors=(409,),
    **USER,
)
def update_user(id: int, body: schemas.UserUpdate) -> schemas.User:
    user = users.require_user(id)
    users.update_user(
        user,
        email=body.email,
        name=body.name,
        given_name=body.given_name,
        family_name=body.family_name,
        is_admin=body.admin,
    )
    if body.disabled is not None:
        users.set_disabled(user, body.disabled)
    return _user(user)


@route(
    "DELETE",
    "/users/{id}",
    "Delete a user",
    status=204,
    description=(
        "Every session of the user ends first, at every app that joined it (as a revocation "
        "does). Their tokens, authorization codes, consents, group memberships and SAML "
        "persistent NameIDs are deleted; audit events stay, naming the user by id."
    ),
    **USER,
)
def delete_user(id: int) -> None:
    users.delete_user(users.require_user(id))


@route(
    "POST",
    "/users/{id}/password",
    "Set a new password; every session of the user ends everywhere",
    status=204,
    body=schemas.PasswordReset,
    **USER,
)
def reset_password(id: int, body: schemas.PasswordReset) -> None:
    users.set_password(users.require_user(id), body.password)


@route(
    "POST",
    "/users/{id}/unlock",
    "Lift a brute-force lockout of the account",
    status=204,
    description=(
        "After too many failed logins an account is locked for a while (IDP_LOGIN_LOCKOUT); "
        "this ends the lock now and forgets the failures. Audited as `account_unlocked`."
    ),
    **USER,
)
def unlock_user(id: int) -> None:
    users.unlock_user(users.require_user(id))


@route(
    "DELETE",
    "/users/{id}/factors",
    "Remove every second factor of the user",
    status=204,
    description=(
        "Their TOTP authenticator and recovery codes (and any passkeys) go: their next login "
        "asks for the password only, or sends them to set up a factor when the MFA policy "
        "requires one. Their sessions stay. Audited as `mfa_reset`."
    ),
    **USER,
)
def reset_factors(id: int) -> None:
    mfa.reset_factors(users.require_user(id))
