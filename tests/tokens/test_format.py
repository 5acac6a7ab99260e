"""The token format: prefix, base62 body, CRC32 checksum; a typo is refused before any query."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from idp.tokens.format import TOKEN_LENGTH
from idp.tokens.format import generate_token
from idp.tokens.format import is_well_formed
from tests.conftest import TestUser
from tests.helpers.rows import count_statements
from tests.tokens.conftest import bearer
from tests.tokens.conftest import create_pat

SHAPE = re.compile(r"^idp_pat_[0-9A-Za-z]{43}[0-9A-Za-z]{6}$")


def _typo(token: str, index: int) -> str:
    replacement = "a" if token[index] != "a" else "b"
    return token[:index] + replacement + token[index + 1 :]


def test_generated_tokens_have_the_documented_shape() -> None:
    values = {generate_token() for _ in range(200)}
    assert len(values) == 200
    for value in values:
        assert SHAPE.match(value) and len(value) == TOKEN_LENGTH
        assert is_well_formed(value)


def test_every_one_character_typo_and_truncation_fails_the_checksum() -> None:
    token = generate_token()
    for index in range(len("idp_pat_"), len(token)):
        assert not is_well_formed(_typo(token, index)), index
    assert not is_well_formed(token[:-1])
    assert not is_well_formed(token + "0")
    assert not is_well_formed(token.replace("idp_pat_", "idp_pat-"))


def test_a_mistyped_token_is_refused_without_a_database_query(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    token = create_pat(app, user.email, "--scope", "openid")["token"]
    for wrong in (_typo(token, 20), _typo(token, len(token) - 1), token[:-3]):
        with count_statements(app) as statements:
            response = http.get("/userinfo", headers=bearer(wrong))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert statements == []
    # The listener does see the lookup a well-formed token costs.
    with count_statements(app) as statements:
        assert http.get("/userinfo", headers=bearer(token)).status_code == 200
    assert any("personal_access_token" in statement for statement in statements)
