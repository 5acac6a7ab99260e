"""Database test helpers: what a negative test checks is unchanged."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import func
from sqlalchemy import select

from idp import db


def count(app: Flask, model: Any) -> int:
    """Return how many rows ``model``'s table holds."""
    with app.app_context():
        total: int = db.get_session().scalar(select(func.count()).select_from(model)) or 0
        return total
