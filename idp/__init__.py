"""The idp application factory: wiring only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from idp import db
from idp.cli_support import IdpGroup
from idp.settings import load_secret_key
from idp.settings import load_settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the IdP app from defaults < IDP_CONFIG < IDP_* env < ``config``.

    Raises:
        ConfigurationError: a setting is wrong (one line naming it).

    """
    settings = load_settings(config)
    app = Flask(__name__, instance_path=str(Path(settings.instance_dir).resolve()))
    app.config.update(
        SECRET_KEY=load_secret_key(settings),
        SESSION_COOKIE_NAME="idp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_secure,
        PREFERRED_URL_SCHEME="https" if settings.is_secure else "http",
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.config.update(settings.extra)
    app.extensions["idp.settings"] = settings

    from idp import commands
    from idp import csrf
    from idp import errors
    from idp import headers
    from idp import inputs
    from idp import limits
    from idp import logs
    from idp import metrics
    from idp import ops
    from idp import outbox
    from idp import redis_store
    from idp import replay
    from idp.account import views as account_views
    from idp.admin import api as admin_api
    from idp.admin import views as admin_views
    from idp.keys import commands as key_commands
    from idp.keys import store as key_store
    from idp.mfa import commands as mfa_commands
    from idp.mfa import service as mfa_service
    from idp.mfa import views as mfa_views
    from idp.oidc import commands as client_commands
    from idp.oidc import server as oidc_server
    from idp.oidc import views as oidc_views
    from idp.passkeys import views as passkey_views
    from idp.saml import commands as sp_commands
    from idp.saml import views as saml_views
    from idp.sessions import commands as session_commands
    from idp.sessions import service as session_service
    from idp.sessions import views as session_views
    from idp.tokens import commands as token_commands
    from idp.tokens import service as token_service
    from idp.users import commands as user_commands

    logs.init_request_log(app)  # first: every other hook runs within the request's ID and timing
    inputs.init_app(app)
    db.init_app(app, settings)
    key_store.init_app(app, settings)
    redis_store.init_app(app, settings)
    session_service.init_app(app, settings)
    replay.init_app(app, settings)
    outbox.init_app(app)
    mfa_service.init_app(app)
    limits.init_app(app, settings)
    oidc_server.init_app(app, settings)
    token_service.init_app(app)
    logs.init_app(app)
    saml_views.init_app(app)
    errors.register_error_handlers(app)
    csrf.init_app(app)
    app.register_blueprint(session_views.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(oidc_views.bp)
    app.register_blueprint(saml_views.bp)
    app.register_blueprint(account_views.bp)
    app.register_blueprint(mfa_views.bp)
    passkey_views.init_app(app)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(admin_views.bp)
    limits.limit_failures(
        app,
        ["sessions.login", "mfa.otp", "passkeys.login_verify", "passkeys.second_factor_verify"],
        scope="login",
        methods=["POST"],
    )
    limits.limit_failures(app, ["oidc.token", "oidc.introspect", "oidc.revoke"], scope="client")
    limits.limit_failures(app, ["oidc.userinfo", *_endpoints(app, "admin_api.")], scope="bearer")
    # Browsers ask for /favicon.ico wherever no <link rel="icon"> names the icon (JSON, images).
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.svg"))
    headers.init_app(app)
    metrics.init_app(app)
    if settings.trusted_proxies:
        # Werkzeug takes the client address and scheme from the Nth-last X-Forwarded-For and
        # -Proto entries, so audit, rate limits and token monitoring see the real client. With
        # 0 the headers are ignored: a client reaching the IdP directly could forge them.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies
        )
    app.cli = IdpGroup(app.name)
    for package in (
        commands,
        user_commands,
        session_commands,
        key_commands,
        client_commands,
        sp_commands,
        token_commands,
        mfa_commands,
    ):
        package.register(app.cli)
    return app


def _endpoints(app: Flask, prefix: str) -> list[str]:
    return [name for name in app.view_functions if name.startswith(prefix)]
