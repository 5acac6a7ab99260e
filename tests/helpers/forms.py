"""Reading HTML forms in tests."""

from __future__ import annotations

import re

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: bytes | str) -> str:
    """Return the CSRF token of the first form in ``page``."""
    text = page.decode() if isinstance(page, bytes) else page
    match = CSRF_FIELD.search(text)
    assert match, "no csrf_token field in the page"
    return match.group(1)
