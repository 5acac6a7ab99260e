"""Demo data for ``idp init --demo``: users (and, as the protocols land, clients and SPs)."""

from __future__ import annotations

from idp.users import service

DEMO_USERS = (
    ("alice@example.com", "Alice Liddell", "alice-demo-password", False),
    ("bob@example.com", "Bob Builder", "bob-demo-password", False),
    ("admin@example.com", "Ada Admin", "admin-demo-password", True),
)


def seed_demo() -> list[str]:
    """Create whatever demo data is missing; return one line per thing said."""
    lines = []
    for email, name, password, is_admin in DEMO_USERS:
        if service.get_user_by_email(email) is None:
            service.add_user(email, name=name, password=password, is_admin=is_admin)
            lines.append(f"Demo user {email} / {password}")
        else:
            lines.append(f"Demo user {email} exists (demo password {password})")
    return lines
