"""Token usage records: one row per token, IP network, hour and resource, counted; retention."""

from __future__ import annotations

from datetime import timedelta
from html import unescape
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy import select

from idp import db
from idp.models.token import TokenUsage
from idp.sessions.logout import run_maintenance
from idp.tokens import usage
from tests.account.conftest import PHONE
from tests.account.conftest import sign_in
from tests.admin.conftest import ADMIN_PASSWORD
from tests.admin.conftest import API
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers.oidc import Client
from tests.helpers.rows import count_statements
from tests.tokens.conftest import bearer
from tests.tokens.conftest import create_pat

AGENT = "ci-script/1.0"


def usage_rows(app: Flask, *, flush: bool = True) -> list[TokenUsage]:
    """The usage rows, after writing the waiting introspection counts (unless told not to)."""
    with app.app_context():
        if flush:
            usage.flush_usage()
        query = select(TokenUsage).order_by(TokenUsage.id)
        rows = list(db.get_session().scalars(query))
        db.get_session().expunge_all()
        return rows


def use(http: FlaskClient, token: str, ip: str, agent: str = AGENT) -> None:
    response = http.get(
        "/userinfo",
        headers={**bearer(token), "User-Agent": agent},
        environ_base={"REMOTE_ADDR": ip},
    )
    assert response.status_code == 200, response.data


def use_refresh_and_introspect(
    app: Flask, http: FlaskClient, client_name: str, api_name: str, *, agent: str, checker_ip: str
) -> tuple[Client, Client, dict[str, Any]]:
    """An app uses its access token, refreshes it, and an API introspects the new one.

    Return the app, the API and the app's first tokens.
    """
    client = oidc.register(app, client_name)
    api = oidc.register(
        app, api_name, redirect_uris=["https://api.example.com/unused"], is_resource_server=True
    )
    tokens = oidc.issue_tokens(http, client, "openid offline_access")
    use(http, tokens["access_token"], "192.0.2.10", agent=agent)
    refreshed = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=client.basic_auth,
        environ_base={"REMOTE_ADDR": "192.0.2.11"},
    )
    assert refreshed.status_code == 200, refreshed.data
    checked = http.post(
        "/introspect",
        data={"token": refreshed.get_json()["access_token"]},
        auth=api.basic_auth,
        environ_base={"REMOTE_ADDR": checker_ip},
    )
    assert checked.get_json()["active"] is True
    return client, api, tokens


def pat_for(app: Flask, user: TestUser) -> dict[str, Any]:
    return create_pat(app, user.email, "--scope", "openid", "--expires-in", "7")


# Each use is a request and an upsert (~15 ms): a hundred show the count growing in one row as
# well as a thousand did, for a tenth of the time.
MANY_USES = 100


def test_many_uses_from_one_ip_make_one_row(
    app: Flask, http: FlaskClient, user: TestUser, clock: Clock
) -> None:
    pat = pat_for(app, user)
    for _ in range(MANY_USES):
        use(http, pat["token"], "198.51.100.7")
    [row] = usage_rows(app)
    assert (row.token_kind, row.token_id, row.user_id) == ("pat", str(pat["id"]), user.id)
    assert row.count == MANY_USES
    assert row.network == "198.51.100.0/24" and row.ip == "198.51.100.7"
    assert row.resource == "userinfo" and not row.introspected
    assert row.user_agent == AGENT
    assert row.hour == clock.now.replace(minute=0, second=0, microsecond=0)


def test_rows_split_by_network_and_hour_not_by_address(
    app: Flask, http: FlaskClient, user: TestUser, clock: Clock
) -> None:
    clock.now = clock.now.replace(minute=10)  # the next five minutes stay in this hour
    pat = pat_for(app, user)
    use(http, pat["token"], "198.51.100.7")
    clock.advance(minutes=5)
    use(http, pat["token"], "198.51.100.200", agent="curl/8")  # same /24: same row
    use(http, pat["token"], "203.0.113.9")
    use(http, pat["token"], "2001:db8:1:2::1")
    use(http, pat["token"], "2001:db8:1:ffff::2")  # same /48
    clock.advance(hours=1)
    use(http, pat["token"], "198.51.100.7")
    rows = usage_rows(app)
    assert [(r.network, r.count) for r in rows] == [
        ("198.51.100.0/24", 2),
        ("203.0.113.0/24", 1),
        ("2001:db8:1::/48", 2),
        ("198.51.100.0/24", 1),
    ]
    first = rows[0]
    assert first.ip == "198.51.100.200" and first.user_agent == "curl/8"
    assert first.last_seen > first.first_seen
    for row in rows:  # never the token value, only its id
        assert pat["token"] not in repr(vars(row))


def test_access_refresh_and_introspection_are_recorded(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client, api, _ = use_refresh_and_introspect(
        app, http, "App", "API", agent=AGENT, checker_ip="10.1.2.3"
    )
    rows = usage_rows(app)
    assert [(r.token_kind, r.resource, r.network, r.introspected) for r in rows] == [
        ("access", "userinfo", "192.0.2.0/24", False),
        ("refresh", client.client_id, "192.0.2.0/24", False),
        ("access", api.client_id, "10.1.2.0/24", True),
    ]
    assert all(r.user_id == logged_in.id for r in rows)
    # An inactive token's introspection records nothing.
    http.post("/introspect", data={"token": "nonsense"}, auth=api.basic_auth)
    assert len(usage_rows(app)) == 3


def test_records_older_than_the_retention_are_purged(
    app: Flask, http: FlaskClient, user: TestUser, clock: Clock
) -> None:
    pat = create_pat(app, user.email, "--scope", "openid", "--expires-in", "90")
    use(http, pat["token"], "198.51.100.7")
    clock.advance(days=89)
    use(http, pat["token"], "198.51.100.7")
    with app.app_context():
        run_maintenance()
    assert len(usage_rows(app)) == 2
    clock.advance(days=2)  # the first hour is now 91 days old (default retention 90)
    with app.app_context():
        run_maintenance()
    [kept] = usage_rows(app)
    assert kept.first_seen == clock.now - timedelta(days=2)


def test_owner_sees_recent_usage_on_the_tokens_page(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    pat = pat_for(app, logged_in)
    use(http, pat["token"], "203.0.113.9", agent="deploy-bot/2")
    page = http.get("/account/tokens").get_data(as_text=True)
    assert "203.0.113.0/24" in page and "deploy-bot/2" in page


def test_admin_api_lists_a_tokens_usage(app: Flask, http: FlaskClient, user: TestUser) -> None:
    admin = make_user(app, "admin@example.com", ADMIN_PASSWORD, is_admin=True)
    admin_pat = create_pat(app, admin.email, "--scope", "admin", name="bootstrap")
    pat = pat_for(app, user)
    use(http, pat["token"], "203.0.113.9")
    use(http, pat["token"], "203.0.113.10")
    response = http.get(f"{API}/tokens/{pat['id']}/usage", headers=bearer(admin_pat["token"]))
    assert response.status_code == 200, response.data
    [item] = response.get_json()["items"]
    assert item["network"] == "203.0.113.0/24" and item["count"] == 2
    assert item["ip"] == "203.0.113.10" and item["resource"] == "userinfo"
    missing = http.get(f"{API}/tokens/99999/usage", headers=bearer(admin_pat["token"]))
    assert missing.status_code == 404
    document = http.get(f"{API}/openapi.json").get_json()
    assert f"{API}/tokens/{{id}}/usage" in document["paths"]


def test_owner_sees_each_sessions_token_use_and_their_pats_on_the_sessions_page(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client, api, tokens = use_refresh_and_introspect(
        app, http, "Wiki", "Ledger API", agent="wiki-server/1", checker_ip="198.51.100.4"
    )
    pat = create_pat(app, logged_in.email, "--scope", "openid", name="backup job")
    use(http, pat["token"], "203.0.113.9", agent="backup/7")
    sign_in(app, logged_in, PHONE)  # another session: no token of these apps is its

    page = unescape(http.get("/account/sessions").get_data(as_text=True))
    listing = page.split('<ul class="items">')[1].split("Personal access tokens")[0]
    this_device, other_device = listing.split("<li>")[1:3]
    assert "Tokens used by these apps" not in other_device
    assert "Wiki" in this_device and "wiki-server/1" in this_device
    assert "access token" in this_device and "192.0.2.0/24" in this_device
    assert "refresh token" in this_device and "renewed at the IdP" in this_device
    assert "checked by Ledger API" in this_device and "198.51.100.0/24" in this_device
    pats = page.split("Personal access tokens")[1]
    assert "backup job" in pats and "203.0.113.0/24" in pats and "backup/7" in pats
    assert "from 203.0.113.9" in pats
    for secret in (pat["token"], tokens["access_token"], tokens["refresh_token"]):
        assert secret not in page


def test_introspections_are_counted_in_memory_and_written_in_one_batch(
    app: Flask, http: FlaskClient, user: TestUser, clock: Clock
) -> None:
    pat = pat_for(app, user)
    api = oidc.register(
        app, "API", redirect_uris=["https://api.example.com/unused"], is_resource_server=True
    )

    def introspect() -> None:
        response = http.post(
            "/introspect",
            data={"token": pat["token"]},
            auth=api.basic_auth,
            environ_base={"REMOTE_ADDR": "10.1.2.3"},
        )
        assert response.get_json()["active"] is True

    with count_statements(app) as statements:
        for _ in range(50):
            introspect()
    assert not [sql for sql in statements if "token_usage" in sql]  # no write per call
    assert usage_rows(app, flush=False) == []
    clock.advance(seconds=5)  # the oldest waiting count is due: this call writes them all
    with count_statements(app) as statements:
        introspect()
    assert len([sql for sql in statements if "INSERT INTO token_usage" in sql]) == 1
    [row] = usage_rows(app, flush=False)
    assert (row.count, row.introspected, row.resource) == (51, True, api.client_id)
    assert row.network == "10.1.2.0/24" and row.token_id == str(pat["id"])
    introspect()
    with app.app_context():
        run_maintenance()  # the periodic sweep writes what waits too
    [row] = usage_rows(app, flush=False)
    assert row.count == 52


def test_a_refresh_records_its_use_in_the_rotations_commit(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, "App")
    tokens = oidc.issue_tokens(http, client, "openid offline_access")
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    engine = db.get_database(app).engine
    commits: list[object] = []
    count = commits.append
    event.listen(engine, "commit", count)
    try:
        refreshed = http.post("/token", data=form, auth=client.basic_auth)
    finally:
        event.remove(engine, "commit", count)
    assert refreshed.status_code == 200, refreshed.data
    assert len(commits) == 1  # the use, the rotation and the new pair together
    [row] = usage_rows(app)
    assert (row.token_kind, row.resource, row.count) == ("refresh", client.client_id, 1)

    # A refresh refused for its scope was a use all the same: recorded, nothing rotated.
    form["refresh_token"] = refreshed.get_json()["refresh_token"]
    refused = http.post("/token", data={**form, "scope": "openid admin"}, auth=client.basic_auth)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_scope"
    [row] = usage_rows(app)
    assert row.count == 2
    assert http.post("/token", data=form, auth=client.basic_auth).status_code == 200
