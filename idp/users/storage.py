"""The only SQL in ``users/``: accounts by e-mail, and groups."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy import select

from idp import db
from idp.models.user import Group
from idp.models.user import User


def get_user_by_email(email: str) -> User | None:
    """Return the user whose (already normalised) e-mail is ``email``, or None."""
    return db.get_session().scalar(select(User).where(User.email == email))


def email_exists(email: str) -> bool:
    return db.get_session().scalar(select(User.id).where(User.email == email)) is not None


def add_user(user: User) -> None:
    session = db.get_session()
    session.add(user)
    session.flush()


def get_user(user_id: int) -> User | None:
    return db.get_session().get(User, user_id)


def list_users(
    *, search: str | None = None, after: int | None = None, limit: int | None = None
) -> list[User]:
    """Return users in id order: those whose e-mail or name contains ``search`` (any case)."""
    query = select(User).order_by(User.id)
    if search:
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(
            User.email.like(pattern, escape="\\") | func.lower(User.name).like(pattern, escape="\\")
        )
    if after is not None:
        query = query.where(User.id > after)
    if limit is not None:
        query = query.limit(limit)
    return list(db.get_session().scalars(query))


def get_group(name: str) -> Group | None:
    return db.get_session().scalar(select(Group).where(Group.name == name))


def add_group(group: Group) -> None:
    db.get_session().add(group)
