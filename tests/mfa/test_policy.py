"""The "MFA required" policy: no factor means TOTP set-up right after the password.

No session starts, and no app hears of the user, before the factor is set up.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.models import LoginSession
from idp.models import TotpFactor
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import mfa
from tests.helpers import oidc
from tests.helpers.forms import csrf_token
from tests.helpers.mfa import SECRET
from tests.helpers.rows import count


@pytest.fixture
def policy_all(settings: dict[str, Any]) -> None:
    settings["mfa_required"] = "all"


def test_a_user_without_a_factor_sets_one_up_before_the_app_gets_a_login(
    policy_all: None,
    app: Flask,
    http: FlaskClient,
    auth: AuthActions,
    user: TestUser,
    clock: Clock,
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client)
    next_url = oidc.query_of(response.headers["Location"])["next"]
    response = auth.login(user.email, user.password, next_url=next_url)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login/setup")
    assert count(app, LoginSession) == 0
    assert http.get(next_url).headers["Location"].startswith("/login?")  # no session yet
    page = http.get("/login/setup")
    secret = SECRET.search(page.get_data(as_text=True))
    assert secret is not None and 'class="qr"' in page.get_data(as_text=True)
    wrong = http.post("/login/setup", data={"csrf_token": csrf_token(page.data), "otp": "1"})
    assert wrong.status_code == 400
    assert count(app, LoginSession) == 0
    done = http.post(
        "/login/setup",
        data={"csrf_token": csrf_token(page.data), "otp": mfa.code(secret.group(1), clock.now)},
    )
    assert done.status_code == 200
    assert len(re.findall(r"<li><code>", done.get_data(as_text=True))) == 10
    assert f'href="{next_url.replace("&", "&amp;")}"' in done.get_data(as_text=True)
    response = http.get(next_url)
    code = oidc.query_of(response.headers["Location"])["code"]
    body = oidc.exchange(http, client, code).get_json()
    claims = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_a_user_with_a_factor_is_asked_for_the_code_as_usual(
    policy_all: None, app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    mfa.enrol(app, user.email)
    assert auth.login(user.email, user.password).headers["Location"].endswith("/login/otp")


def test_the_policy_can_name_admins_or_groups(
    settings: dict[str, Any], app: Flask, auth: AuthActions, user: TestUser
) -> None:
    from idp.mfa import service
    from idp.settings import load_settings
    from idp.users.service import require_user_by_email

    admin = make_user(app, "root@example.com", "root password, long enough", is_admin=True)
    cases = [
        ({"mfa_required": "off"}, {user.email: False, admin.email: False}),
        ({"mfa_required": "admins"}, {user.email: False, admin.email: True}),
        ({"mfa_required_groups": "staff, ops"}, {user.email: True, admin.email: False}),
    ]
    with app.app_context():
        from idp import db
        from idp.models.user import Group

        alice = require_user_by_email(user.email)
        alice.groups.append(Group(name="ops"))
        db.get_session().commit()
        for overrides, expected in cases:
            app.extensions["idp.settings"] = load_settings({**settings, **overrides})
            for email, required in expected.items():
                assert service.is_mfa_required(require_user_by_email(email)) is required


def test_turning_totp_off_is_refused_while_the_policy_requires_it(
    policy_all: None, app: Flask, user: TestUser
) -> None:
    from idp.errors import InvalidInputError
    from idp.mfa import service
    from idp.users.service import require_user_by_email

    mfa.enrol(app, user.email)
    with app.app_context(), pytest.raises(InvalidInputError, match="requires a second factor"):
        service.disable_totp(require_user_by_email(user.email))
    assert count(app, TotpFactor) == 1


def test_an_unknown_policy_is_a_configuration_error() -> None:
    from idp.errors import ConfigurationError
    from idp.settings import load_settings

    with pytest.raises(ConfigurationError, match="mfa_required: must be one of off, all, admins"):
        load_settings({"mfa_required": "sometimes"}, environ={})
