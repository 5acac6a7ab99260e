"""Each demo app has its own favicon, linked from its pages and served at /favicon.ico."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from relying_party_demo import notes
from relying_party_demo import payroll
from relying_party_demo import wiki

ICON_LINK = re.compile(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">')


def build(name: str, tmp_path: Path) -> Flask:
    if name == "payroll":
        return payroll.create_app({"PAYROLL_SP_DIR": str(tmp_path / "sp")})
    return {"notes": notes, "wiki": wiki}[name].create_app()


@pytest.mark.parametrize("name", ["notes", "wiki", "payroll"])
def test_the_app_links_and_serves_its_favicon(name: str, tmp_path: Path) -> None:
    http = build(name, tmp_path).test_client()
    page = http.get("/no/such/page")  # any page: the layout carries the link
    assert page.status_code == 404
    links = ICON_LINK.findall(page.get_data(as_text=True))
    assert links == [f"/static/favicon-{name}.svg"]
    with http.get(links[0]) as icon:
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
        assert icon.data.startswith(b"<svg ") and b"<script" not in icon.data
    with http.get("/favicon.ico") as legacy:
        assert legacy.status_code == 200 and legacy.mimetype == "image/svg+xml"
        assert legacy.data == icon.data


def test_each_app_has_an_icon_of_its_own(tmp_path: Path) -> None:
    icons = set()
    for name in ("notes", "wiki", "payroll"):
        with build(name, tmp_path).test_client().get("/favicon.ico") as icon:
            assert icon.status_code == 200
            icons.add(icon.data)
    assert len(icons) == 3
