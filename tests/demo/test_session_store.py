"""The demo apps' server-side session: a random key in the cookie, the data on the server."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask import session

from relying_party_demo.common.store import ServerSession
from relying_party_demo.common.store import ServerSessionInterface
from relying_party_demo.common.store import SessionStore


def make_app(store: SessionStore) -> Flask:
    app = Flask(__name__)
    app.config["SESSION_COOKIE_NAME"] = "demo_session"
    app.session_interface = ServerSessionInterface(store)

    @app.get("/set/<value>")
    def set_value(value: str) -> str:
        session["value"] = value
        return "ok"

    @app.get("/get")
    def get_value() -> str:
        return str(session.get("value"))

    @app.get("/rotate")
    def rotate() -> str:
        assert isinstance(session, ServerSession)
        session.regenerate()
        return "ok"

    @app.get("/clear")
    def clear() -> str:
        session.clear()
        return "ok"

    return app


def cookie_of(http: object) -> str | None:
    cookie = http.get_cookie("demo_session")  # type: ignore[attr-defined]
    return None if cookie is None else str(cookie.value)


def test_the_cookie_is_a_key_and_the_data_stays_on_the_server() -> None:
    store = SessionStore()
    http = make_app(store).test_client()

    http.get("/set/secret-value")

    key = cookie_of(http)
    assert key is not None and "secret" not in key
    assert store.load(key) == {"value": "secret-value"}
    assert http.get("/get").text == "secret-value"


def test_a_session_ended_during_a_request_is_not_brought_back() -> None:
    store = SessionStore()
    app = make_app(store)

    @app.get("/ended-meanwhile")
    def ended_meanwhile() -> str:
        # A back-channel logout lands while this request still holds the session.
        store.end_where(lambda data: data.get("value") == "a")
        session["value"] = "b"
        return "ok"

    http = app.test_client()
    http.get("/set/a")
    key = cookie_of(http)
    assert key is not None

    http.get("/ended-meanwhile")

    assert store.load(key) is None
    assert store.count() == 0
    assert cookie_of(http) is None


def test_regenerate_moves_the_data_to_a_new_key() -> None:
    store = SessionStore()
    http = make_app(store).test_client()
    http.get("/set/a")
    old = cookie_of(http)

    http.get("/rotate")

    new = cookie_of(http)
    assert new is not None and old is not None and new != old
    assert store.load(old) is None
    assert store.load(new) == {"value": "a"}


def test_an_emptied_session_is_deleted_with_its_cookie() -> None:
    store = SessionStore()
    http = make_app(store).test_client()
    http.get("/set/a")

    http.get("/clear")

    assert store.count() == 0
    assert cookie_of(http) is None


def test_an_unknown_key_gives_an_empty_session() -> None:
    store = SessionStore()
    http = make_app(store).test_client()
    http.set_cookie("demo_session", "made-up")

    assert http.get("/get").text == "None"
    assert store.count() == 0


def test_idle_sessions_expire() -> None:
    store = SessionStore(idle_timeout=timedelta(seconds=-1))
    key = store.create({"value": "a"})

    assert store.load(key) is None
    assert store.count() == 0


def test_first_time_spots_a_replay() -> None:
    store = SessionStore()

    assert store.first_time("jti-1")
    assert not store.first_time("jti-1")
    assert store.first_time("jti-2")
