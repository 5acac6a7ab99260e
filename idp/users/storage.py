"""The only SQL in ``users/``: accounts by e-mail, and groups."""

from __future__ import annotations

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


def list_users() -> list[User]:
    """Return every user, oldest first."""
    return list(db.get_session().scalars(select(User).order_by(User.id)))


def get_group(name: str) -> Group | None:
    return db.get_session().scalar(select(Group).where(Group.name == name))


def add_group(group: Group) -> None:
    db.get_session().add(group)
