"""One logout ends the user's session in every demo app: the IdP's back-channel logout token."""

from __future__ import annotations

import requests

from tests.demo.conftest import DemoApp
from tests.demo.conftest import hidden_fields
from tests.demo.conftest import sign_in
from tests.demo.conftest import stored_user

EMAIL_LINE = 'id="email">alice@example.com</strong>'


def test_logging_out_at_notes_ends_the_wiki_session_through_the_back_channel(
    notes: DemoApp, wiki: DemoApp, browser: requests.Session
) -> None:
    page = sign_in(browser, notes)
    assert EMAIL_LINE in browser.get(f"{wiki.url}/", timeout=30).text
    wiki_user = stored_user(wiki, browser)
    assert wiki_user is not None

    browser.post(
        f"{notes.url}/logout",
        data={"csrf_token": hidden_fields(page.text)["csrf_token"]},
        timeout=30,
    )

    # Wiki's browser cookie is untouched; only the IdP's signed logout token can have ended it.
    assert stored_user(wiki, browser) is None
    assert not wiki.store.end_where(lambda data: data.get("user") == wiki_user)
    assert EMAIL_LINE not in browser.get(f"{wiki.url}/", timeout=30).text
