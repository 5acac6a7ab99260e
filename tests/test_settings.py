"""Settings: defaults < IDP_CONFIG TOML < IDP_* env < mapping; bad values name the setting."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from idp import create_app
from idp.errors import ConfigurationError
from idp.settings import Settings
from idp.settings import load_secret_key
from idp.settings import load_settings


def write_toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "idp.toml"
    path.write_text(text)
    return str(path)


def test_defaults_from_an_empty_environment() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.issuer == "http://127.0.0.1:5000"
    assert settings.database_url == "sqlite:///instance/idp.sqlite3"
    assert settings.redis_url is None
    assert settings.keys_dir == "keys/"
    assert settings.secret_key is None
    assert settings.session_idle_timeout == timedelta(hours=8)
    assert not settings.is_secure


def test_precedence_defaults_toml_env_mapping(tmp_path: Path) -> None:
    config = write_toml(
        tmp_path,
        """
issuer = "https://toml.example"
database_url = "postgresql+psycopg://toml/idp"
redis_url = "redis://toml:6379/0"
keys_dir = "/toml/keys"
session_idle_timeout = 60
""",
    )
    environ = {
        "IDP_CONFIG": config,
        "IDP_ISSUER": "https://env.example",
        "IDP_DATABASE_URL": "postgresql+psycopg://env/idp",
        "IDP_SESSION_IDLE_TIMEOUT": "120",
        "IDP_NOT_A_SETTING": "ignored",
    }
    settings = load_settings({"issuer": "https://mapping.example"}, environ=environ)
    assert settings.issuer == "https://mapping.example"  # mapping beats env
    assert settings.database_url == "postgresql+psycopg://env/idp"  # env beats TOML
    assert settings.session_idle_timeout == timedelta(seconds=120)
    assert settings.redis_url == "redis://toml:6379/0"  # TOML beats defaults
    assert settings.keys_dir == "/toml/keys"
    assert settings.instance_dir == Settings().instance_dir  # defaults when nobody says
    assert settings.is_secure


def test_durations_and_integers_from_strings() -> None:
    environ = {
        "IDP_SESSION_IDLE_TIMEOUT": "90",
        "IDP_SESSION_ABSOLUTE_TIMEOUT": " 3600.5 ",
        "IDP_JWKS_MAX_AGE": "30",
        "IDP_PASSWORD_HASH_TIME_COST": "2",
    }
    settings = load_settings(environ=environ)
    assert settings.session_idle_timeout == timedelta(seconds=90)
    assert settings.session_absolute_timeout == timedelta(seconds=3600.5)
    assert settings.jwks_max_age == timedelta(seconds=30)
    assert settings.password_hash_time_cost == 2


def test_mapping_takes_timedeltas_and_numbers() -> None:
    settings = load_settings(
        {"session_idle_timeout": timedelta(minutes=5), "key_retention": 7200}, environ={}
    )
    assert settings.session_idle_timeout == timedelta(minutes=5)
    assert settings.key_retention == timedelta(hours=2)


def test_upper_case_mapping_keys_are_flask_config() -> None:
    settings = load_settings({"TESTING": True, "issuer": "http://a.test"}, environ={})
    assert settings.extra == {"TESTING": True}


def test_empty_redis_url_means_unset() -> None:
    assert load_settings(environ={"IDP_REDIS_URL": ""}).redis_url is None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"issuer": "ftp://idp.example"}, "issuer"),
        ({"issuer": "idp.example"}, "issuer"),
        ({"issuer": "https://idp.example/"}, "issuer"),
        ({"issuer": "https://idp.example?x=1"}, "issuer"),
        ({"issuer": ""}, "issuer"),
        ({"database_url": "not a database url"}, "database_url"),
        ({"redis_url": "http://127.0.0.1:6379"}, "redis_url"),
        ({"session_idle_timeout": "-5"}, "session_idle_timeout"),
        ({"session_absolute_timeout": "0"}, "session_absolute_timeout"),
        ({"jwks_max_age": "ten minutes"}, "jwks_max_age"),
        ({"key_retention": True}, "key_retention"),
        ({"key_retention": [1]}, "key_retention"),
        ({"password_hash_time_cost": "three"}, "password_hash_time_cost"),
        ({"password_hash_memory_cost": "0"}, "password_hash_memory_cost"),
        ({"password_hash_parallelism": -1}, "password_hash_parallelism"),
        ({"password_hash_parallelism": True}, "password_hash_parallelism"),
        (
            {"session_idle_timeout": "7200", "session_absolute_timeout": "3600"},
            "session_idle_timeout",
        ),
        ({"keys_dir": 42}, "keys_dir"),
        ({"bogus_setting": 1}, "bogus_setting"),
    ],
)
def test_bad_mapping_value_names_the_setting(values: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings(values, environ={})
    message = str(error.value)
    assert named in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("IDP_ISSUER", "ftp://x", "issuer"),
        ("IDP_ISSUER", "http://x/", "issuer"),
        ("IDP_DATABASE_URL", "::::", "database_url"),
        ("IDP_REDIS_URL", "memcached://x", "redis_url"),
        ("IDP_SESSION_IDLE_TIMEOUT", "0", "session_idle_timeout"),
        ("IDP_SESSION_IDLE_TIMEOUT", "-1", "session_idle_timeout"),
        ("IDP_PASSWORD_HASH_TIME_COST", "1.5", "password_hash_time_cost"),
    ],
)
def test_bad_environment_value_names_the_setting(variable: str, value: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        load_settings(environ={variable: value})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('issuer = "https://idp.example"\nbogus_key = 1\n', "bogus_key"),
        ("issuer = \n", "IDP_CONFIG"),
        ("[[[not toml", "IDP_CONFIG"),
        ("session_idle_timeout = -3\n", "session_idle_timeout"),
        ("extra = 1\n", "extra"),
    ],
)
def test_bad_toml_names_the_problem(tmp_path: Path, text: str, named: str) -> None:
    environ = {"IDP_CONFIG": write_toml(tmp_path, text)}
    with pytest.raises(ConfigurationError, match=named):
        load_settings(environ=environ)


def test_missing_toml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="IDP_CONFIG") as error:
        load_settings(environ={"IDP_CONFIG": str(tmp_path / "nope.toml")})
    assert "nope.toml" in str(error.value)


def test_unreadable_toml_file(tmp_path: Path) -> None:
    # A path below a regular file: unreadable even for root (ENOTDIR).
    path = Path(write_toml(tmp_path, 'issuer = "https://idp.example"\n')) / "idp.toml"
    with pytest.raises(ConfigurationError, match="IDP_CONFIG"):
        load_settings(environ={"IDP_CONFIG": str(path)})


def test_a_directory_as_toml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="IDP_CONFIG"):
        load_settings(environ={"IDP_CONFIG": str(tmp_path)})


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = load_settings({"instance_dir": str(tmp_path / "instance")}, environ={})
    key = load_secret_key(settings)
    path = tmp_path / "instance" / "secret_key"
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key
    assert load_secret_key(settings) == key
    assert path.read_text().strip() == key


def test_configured_secret_key_writes_nothing(tmp_path: Path) -> None:
    settings = load_settings(
        {"instance_dir": str(tmp_path / "instance"), "secret_key": "configured"}, environ={}
    )
    assert load_secret_key(settings) == "configured"
    assert not (tmp_path / "instance").exists()


def test_empty_secret_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("")
    settings = load_settings({"instance_dir": str(tmp_path)}, environ={})
    with pytest.raises(ConfigurationError, match="secret_key"):
        load_secret_key(settings)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A create_app mapping that touches no database, in an environment without IDP_*."""
    for name in list(os.environ):
        if name.startswith("IDP_"):
            monkeypatch.delenv(name)
    return {
        "database_url": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "keys_dir": str(tmp_path / "keys"),
        "instance_dir": str(tmp_path / "instance"),
        "secret_key": "test-secret-key-not-for-production",
        "TESTING": True,
    }


def test_create_app_refuses_a_bad_setting(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="issuer"):
        create_app({**settings, "issuer": "ftp://idp.test"})
    with pytest.raises(ConfigurationError, match="nonsense"):
        create_app({**settings, "nonsense": 1})


def test_create_app_reads_the_environment(
    settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDP_REDIS_URL", "ftp://wrong")
    with pytest.raises(ConfigurationError, match="redis_url"):
        create_app(settings)
    monkeypatch.setenv("IDP_REDIS_URL", "redis://127.0.0.1:6379/0")
    app = create_app(settings)
    assert app.extensions["idp.settings"].redis_url == "redis://127.0.0.1:6379/0"
    assert app.config["SECRET_KEY"] == settings["secret_key"]
    assert app.config["TESTING"] is True


def test_log_level_from_the_environment(tmp_path: Path) -> None:
    assert load_settings(environ={}).log_level == "INFO"
    assert load_settings(environ={"IDP_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(ConfigurationError, match="log_level"):
        load_settings(environ={"IDP_LOG_LEVEL": "loud"})
