"""Typed settings: defaults < TOML file named by ``IDP_CONFIG`` < ``IDP_*`` env < mapping.

Over 400 lines: ``Settings`` declares every setting with its default and meaning (half the
file); the rest parses and validates them, one small function per kind of value.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask import current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from idp.errors import ConfigurationError

ENV_PREFIX = "IDP_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The scopes a personal access token may ever carry (pat_allowed_scopes narrows them).
PAT_SCOPES = ("openid", "profile", "email", "groups", "admin")
# What an unusual-use rule does on a hit.
RULE_ACTIONS = ("notify", "revoke", "off")
# Who must have a second factor (mfa_required).
MFA_POLICIES = ("off", "all", "admins")
LOG_FORMATS = ("json", "text")


@dataclass(frozen=True)
class Settings:
    issuer: str = "http://127.0.0.1:5000"
    """The issuer URL; every absolute URL the IdP emits derives from it."""

    database_url: str = "sqlite:///instance/idp.sqlite3"
    """Any SQLAlchemy URL; ``postgresql+psycopg://...`` in production."""

    redis_url: str | None = None
    """When set, sessions, rate limits and replay caches live in Redis."""

    keys_dir: str = "keys/"
    """Directory of the signing keys (JWK files and the SAML certificate)."""

    keys_passphrase: str | None = None
    """Passphrase of the private key files: when set, new keys are written encrypted (PKCS#8,
    PBES2 with AES-256) and encrypted ones are read with it; clear files stay readable."""

    secret_key: str | None = None
    """Cookie signing key; generated into ``instance/`` on first run; replicas must share it."""

    instance_dir: str = "instance/"
    """Directory for generated runtime files (the secret key, the SQLite database)."""

    session_idle_timeout: timedelta = timedelta(hours=8)
    """A login session with no activity for this long ends (seconds in TOML/env)."""

    session_absolute_timeout: timedelta = timedelta(hours=24)
    """A login session ends this long after the login, whatever its activity."""

    jwks_max_age: timedelta = timedelta(minutes=10)
    """How long clients may cache ``/jwks``; a rotated key starts signing only after it."""

    key_retention: timedelta = timedelta(days=1)
    """How long a superseded signing key stays published after its successor starts signing."""

    access_token_ttl: timedelta = timedelta(minutes=10)
    """Lifetime of JWT access tokens (RFC 9068)."""

    id_token_ttl: timedelta = timedelta(minutes=10)
    """Lifetime of ID tokens."""

    pairwise_salt: str | None = None
    """Salt of pairwise subject identifiers; defaults to the secret key (keep it stable)."""

    registration_token: str | None = None
    """Initial access token for dynamic client registration (RFC 7591); unset = registration off."""

    password_hash_time_cost: int = 3
    """Argon2id iterations; hashes made with other parameters are upgraded at next login."""

    password_hash_memory_cost: int = 65536
    """Argon2id memory in KiB."""

    password_hash_parallelism: int = 4
    """Argon2id lanes."""

    login_max_failures: int = 5
    """Wrong passwords (or client secrets) for one account (or client) within ``login_lockout``
    before it is locked for that long."""

    login_lockout: timedelta = timedelta(seconds=900)
    """Seconds an account stays locked; also the window the failures are counted in."""

    login_rate_limit: str = "30 per minute"
    """Failed logins, client authentications and bearer tokens one client IP may send
    (Flask-Limiter notation) before it is answered 429 with ``Retry-After``."""

    mfa_required: str = "off"
    """Who must have a second factor: ``off``, ``all`` users or ``admins``. A user it names
    who has none is sent to set up TOTP right after their password, before any app hears of
    the login."""

    mfa_required_groups: str | None = None
    """Comma-separated group names whose members must have a second factor too (as with
    ``mfa_required``), whatever ``mfa_required`` says."""

    trusted_proxies: int = 0
    """How many reverse proxies in front of the IdP set ``X-Forwarded-For`` and
    ``X-Forwarded-Proto``; 0 ignores those headers (any client could forge them)."""

    metrics_allowed_networks: str = "127.0.0.0/8 ::1/128"
    """IP networks (space-separated CIDR) whose direct connections may read ``/metrics``;
    a request relayed by a trusted proxy (``X-Forwarded-For``) is always refused."""

    log_format: str = "json"
    """``idp serve``'s log lines on stderr: ``json`` (one object per line) or ``text``."""

    log_level: str = "INFO"
    """Level of ``idp serve``'s log on stderr (DEBUG, INFO, WARNING, ERROR); INFO includes the
    ``idp.audit`` lines. No token, code, secret or password is logged at any level."""

    pat_enabled: bool = True
    """Whether personal access tokens can be created and used (false: every PAT is refused)."""

    pat_max_lifetime: int = 90
    """Days a personal access token may live at most. 90 days: the longest choice the
    ``/account/tokens`` page offers, so a leaked token dies within a quarter and scripts rotate
    their tokens at least that often (GitLab's and GitHub's policies cap at 365 days)."""

    pat_allow_no_expiry: bool = False
    """Whether a personal access token may be created without an expiry date."""

    pat_allowed_scopes: str = "openid profile email groups admin"
    """Scopes a personal access token may carry (space-separated, from
    ``openid profile email groups admin``); ``admin`` only ever for admin users."""

    token_usage_retention: int = 90
    """Days token usage records (per token, IP network and hour) are kept; older ones are
    purged by the periodic sweep."""

    token_rule_new_network: str = "notify"  # noqa: S105 (an action, not a secret)
    """A personal access token used from an IP network it was never used from while its
    owner is logged in from another network: ``notify`` the owner and admins, ``revoke`` the
    token too, or ``off``."""

    token_rule_many_networks: str = "notify"  # noqa: S105 (an action, not a secret)
    """One token used from more than ``token_many_networks_threshold`` networks within an
    hour: ``notify``, ``revoke`` (for a refresh token, its family) or ``off``."""

    token_many_networks_threshold: int = 3
    """Distinct IP networks (/24, /48) one token may be used from within an hour."""

    token_rule_after_account_change: str = "notify"  # noqa: S105 (an action, not a secret)
    """A personal access token created before its owner changed password, or whose owner
    is disabled, still presented: ``notify``, ``revoke`` or ``off``."""

    smtp_url: str | None = None
    """``smtp://host:port`` (or ``smtps://``) for security notices to users by e-mail."""

    smtp_from: str | None = None
    """The sender of those e-mails; defaults to ``idp@`` the issuer's host name."""

    security_webhook_url: str | None = None
    """Where security events are POSTed as JSON for admins (unset: no webhook)."""

    security_webhook_secret: str | None = None
    """Key of the webhook's ``X-Idp-Signature`` (HMAC-SHA256 of ``timestamp.body``)."""

    extra: Mapping[str, Any] = field(default_factory=dict)
    """Flask configuration passed through unchanged (upper-case keys of the create_app mapping)."""

    @property
    def is_secure(self) -> bool:
        """Return whether the issuer is served over https (cookies get ``Secure``)."""
        return self.issuer.startswith("https://")


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "extra"}


def _parse_duration(name: str, value: Any) -> timedelta:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ConfigurationError(f"{name}: must be a number of seconds, not a boolean")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            raise ConfigurationError(
                f"{name}: must be a number of seconds, got {value!r}"
            ) from None
    else:
        raise ConfigurationError(f"{name}: must be a number of seconds")
    if seconds <= 0:
        raise ConfigurationError(f"{name}: must be positive, got {seconds:g}")
    return timedelta(seconds=seconds)


def _parse_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{name}: must be a positive integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name}: must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise ConfigurationError(f"{name}: must be a positive integer, got {number}")
    return number


def _parse_count(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{name}: must be a whole number from 0")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name}: must be a whole number from 0, got {value!r}") from None
    if number < 0:
        raise ConfigurationError(f"{name}: must be a whole number from 0, got {number}")
    return number


def _parse_networks(name: str, value: str) -> None:
    for network in value.split():
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigurationError(f"{name}: not an IP network: {network!r}") from None


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{name}: must be true or false, got {value!r}")


def _parse_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name}: must be a non-empty string")
    return value.strip()


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELDS[name].type
    if name == "log_level":
        return _parse_str(name, value).upper()
    if name == "mfa_required":
        return _parse_str(name, value).lower()
    if name == "log_format":
        return _parse_str(name, value).lower()
    if name == "trusted_proxies":
        return _parse_count(name, value)
    if kind == "timedelta":
        return _parse_duration(name, value)
    if kind == "int":
        return _parse_int(name, value)
    if kind == "bool":
        return _parse_bool(name, value)
    if kind == "str | None":
        return None if value in (None, "") else _parse_str(name, value)
    return _parse_str(name, value)


def _validate(settings: Settings) -> None:
    parts = urlsplit(settings.issuer)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"issuer: must be an http(s) URL, got {settings.issuer!r}")
    if parts.query or parts.fragment or settings.issuer.endswith("/"):
        raise ConfigurationError(
            "issuer: must have no query, fragment or trailing slash (OpenID Discovery §3)"
        )
    try:
        make_url(settings.database_url)
    except ArgumentError:
        raise ConfigurationError(
            f"database_url: not a SQLAlchemy URL: {settings.database_url!r}"
        ) from None
    if settings.redis_url is not None:
        scheme = urlsplit(settings.redis_url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError("redis_url: must start with redis://, rediss:// or unix://")
    if settings.log_format not in LOG_FORMATS:
        raise ConfigurationError(f"log_format: must be one of {', '.join(LOG_FORMATS)}")
    _parse_networks("metrics_allowed_networks", settings.metrics_allowed_networks)
    if settings.log_level not in LOG_LEVELS:
        raise ConfigurationError(f"log_level: must be one of {', '.join(LOG_LEVELS)}")
    if settings.mfa_required not in MFA_POLICIES:
        raise ConfigurationError(f"mfa_required: must be one of {', '.join(MFA_POLICIES)}")
    unknown_scopes = set(settings.pat_allowed_scopes.split()) - set(PAT_SCOPES)
    if unknown_scopes:
        raise ConfigurationError(
            f"pat_allowed_scopes: unknown scope {sorted(unknown_scopes)[0]!r}; "
            f"choose from {' '.join(PAT_SCOPES)}"
        )
    rules = (
        "token_rule_new_network",
        "token_rule_many_networks",
        "token_rule_after_account_change",
    )
    for name in rules:
        if getattr(settings, name) not in RULE_ACTIONS:
            raise ConfigurationError(f"{name}: must be one of {', '.join(RULE_ACTIONS)}")
    if settings.token_many_networks_threshold < 1:
        raise ConfigurationError("token_many_networks_threshold: must be at least 1")
    if settings.smtp_url is not None and urlsplit(settings.smtp_url).scheme not in (
        "smtp",
        "smtps",
    ):
        raise ConfigurationError("smtp_url: must start with smtp:// or smtps://")
    if settings.security_webhook_url is not None:
        if urlsplit(settings.security_webhook_url).scheme not in ("http", "https"):
            raise ConfigurationError("security_webhook_url: must be an http(s) URL")
        if not settings.security_webhook_secret:
            raise ConfigurationError("security_webhook_secret: required with the webhook URL")
    if settings.token_usage_retention < 1:
        raise ConfigurationError("token_usage_retention: must be at least 1 day")
    if settings.session_idle_timeout > settings.session_absolute_timeout:
        raise ConfigurationError("session_idle_timeout: must not exceed session_absolute_timeout")


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigurationError(f"IDP_CONFIG: cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"IDP_CONFIG: {path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigurationError(f"IDP_CONFIG: unknown setting {unknown[0]!r} in {path}")
    return data


def load_settings(
    mapping: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge every source into validated Settings.

    Raises:
        ConfigurationError: a setting is unknown or invalid (the message names it).

    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if environ.get("IDP_CONFIG"):
        values.update(_read_toml(environ["IDP_CONFIG"]))
    for name in _FIELDS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = environ[env_name]
    extra: dict[str, Any] = {}
    for key, value in (mapping or {}).items():
        if key in _FIELDS:
            values[key] = value
        elif key.isupper():
            extra[key] = value
        else:
            raise ConfigurationError(f"unknown setting {key!r}")
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    settings = Settings(**coerced, extra=extra)
    _validate(settings)
    return settings


def get_settings(app: Flask | None = None) -> Settings:
    """Return the settings of ``app`` (default: the current app), as ``create_app`` stored them."""
    settings: Settings = (app or current_app).extensions["idp.settings"]
    return settings


def load_secret_key(settings: Settings) -> str:
    """Return the configured secret key, else the one in ``instance/``, creating it once."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.instance_dir) / "secret_key"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: when several workers start at once exactly one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another worker may be between create and write
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise ConfigurationError(f"secret_key: {path} is empty") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key
