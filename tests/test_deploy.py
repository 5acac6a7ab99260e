"""docker-compose.yml, the Dockerfile and the proxy's config, read as the engine would read them.

No container engine runs here: these checks hold each file to what the IdP actually reads
and to how ``make`` installs it.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from idp.settings import ENV_PREFIX
from idp.settings import Settings
from idp.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {ENV_PREFIX + field.name.upper() for field in dataclasses.fields(Settings)}
SETTINGS.add("IDP_CONFIG")
REPLICAS = ("idp-1", "idp-2")
DEMO_APPS = {"notes": 5001, "wiki": 5002, "payroll": 5003}
OFFICIAL = {"postgres": "postgres", "redis": "redis", "proxy": "nginx"}
VARIABLE = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return {key: str(value) for key, value in env.items()}


def test_every_service_has_an_image_a_health_check_and_waits_for_what_it_needs(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == {"postgres", "redis", "proxy", "idp-init", *REPLICAS, *DEMO_APPS}
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        if name == "idp-init":  # a one-shot job: the others wait for it to succeed
            assert service["healthcheck"] == {"disable": True}
            assert service["restart"] == "no"
        else:
            test = service["healthcheck"]["test"]
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            assert condition["condition"] in (
                "service_healthy",
                "service_completed_successfully",
                "service_started",  # only where the dependency is the network itself
            ), (name, dependency)
            if condition["condition"] == "service_started":
                assert service["network_mode"] == f"service:{dependency}"
        if "network_mode" in service:
            assert service["network_mode"] == "service:proxy", name
    for name, image in OFFICIAL.items():
        repository, tag = services[name]["image"].split(":")
        assert repository == image and tag and tag != "latest", name  # official, pinned
    for name in (*REPLICAS, *DEMO_APPS):
        needs = services[name]["depends_on"]
        if name in REPLICAS:
            assert needs["idp-init"] == {"condition": "service_completed_successfully"}
            assert needs["postgres"] == needs["redis"] == {"condition": "service_healthy"}
        else:
            assert all(needs[replica]["condition"] == "service_healthy" for replica in REPLICAS)


def test_data_lives_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    named = set(compose["volumes"])
    for name, path in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        [volume] = services[name]["volumes"]
        source, target = volume.split(":")[:2]
        assert source in named and target == path
    assert "--appendonly yes" in " ".join(services["redis"]["command"])


def test_idp_variables_are_settings_the_idp_reads_and_replicas_agree(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        unknown = {key for key in environment(service) if key.startswith(ENV_PREFIX)} - SETTINGS
        assert not unknown, (name, unknown)
    first, second = (environment(services[name]) for name in REPLICAS)
    assert first == second == environment(services["idp-init"])
    for shared in ("IDP_SECRET_KEY", "IDP_DATABASE_URL", "IDP_REDIS_URL", "IDP_KEYS_DIR"):
        assert first[shared], shared
    # The replicas share the signing keys: one volume, at the IDP_KEYS_DIR they read.
    for name in (*REPLICAS, "idp-init"):
        assert f"idp-keys:{first['IDP_KEYS_DIR'].rstrip('/')}" in services[name]["volumes"]
    # Each value is one the IdP accepts (secrets filled in as .env would).
    filled = {
        key: VARIABLE.sub("example", value) for key, value in first.items() if key in SETTINGS
    }
    settings = load_settings(environ=filled)
    assert settings.trusted_proxies == 1  # exactly the proxy in front
    assert settings.log_format == "json"


def test_secrets_come_from_the_ignored_env_file(services: dict[str, dict[str, Any]]) -> None:
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    used = set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    assert used == example == {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "IDP_SECRET_KEY"}
    secret = environment(services["idp-1"])["IDP_SECRET_KEY"]
    assert secret == "${IDP_SECRET_KEY:?set IDP_SECRET_KEY in .env}"  # required, no default
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", ".venv/", "instance/", "keys/*"} <= set(ignored)


def test_the_issuer_is_the_proxy_on_port_5000(services: dict[str, dict[str, Any]]) -> None:
    issuers = {environment(service).get("IDP_ISSUER") for service in services.values()}
    assert issuers - {None} == {"http://127.0.0.1:5000"}
    published = {port.rsplit(":", 2)[-2:][0]: port for port in services["proxy"]["ports"]}
    assert set(published) == {"5000", *(str(port) for port in DEMO_APPS.values())}
    assert all(port.startswith("127.0.0.1:") for port in published.values())
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.findall(r"^\s*listen (\d+);", nginx, re.M) == ["5000"]
    upstream = re.findall(r"^\s*server 127\.0\.0\.1:(\d+)", nginx, re.M)
    serving = [shlex.join(services[name]["command"]) for name in REPLICAS]
    assert serving == [f"idp serve --host 127.0.0.1 --port {port}" for port in upstream]
    for name, port in DEMO_APPS.items():
        base = environment(services[name])[f"{name.upper()}_BASE_URL"]
        assert base == f"http://127.0.0.1:{port}"
        assert f"{port}), 2)" in services[name]["healthcheck"]["test"][-1]
    for name in REPLICAS:
        port = services[name]["command"][-1]
        assert f"127.0.0.1:{port}/readyz" in services[name]["healthcheck"]["test"][-1]


def test_the_proxy_forwards_the_client_and_hides_metrics() -> None:
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx  # replaced, not appended
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx
    assert re.search(r"location = /metrics \{\s*return 404;", nginx)
    [log_format] = re.findall(r"^\s*log_format (.*?);", nginx, re.M | re.S)
    for variable in ("$request ", "$request_uri", "$args", "$query_string", "$http_referer"):
        assert variable not in log_format + " ", variable  # no query string in its log


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def pip_install(command: str) -> tuple[list[str], set[str]]:
    """Return the options and the extras of the ``pip install`` in a shell command."""
    words = shlex.split(command.replace("$(BIN)/python", "python"))
    start = words.index("install", words.index("pip"))
    if words[start + 1] == "--quiet":
        start += 1
    target = next(word for word in words[start + 1 :] if word.startswith((".", "-e")))
    options = words[start + 1 : words.index(target)]
    extras = re.search(r"\[(.*)\]", words[words.index(target) + 1] if target == "-e" else target)
    return options, set(extras.group(1).split(",")) if extras else set()


def test_the_image_installs_as_make_does_and_runs_idp_serve_as_a_user() -> None:
    instructions = dockerfile_instructions()
    assert re.fullmatch(r"python:3\.1[1-9]-slim", instructions[0][1])
    makefile = (ROOT / "Makefile").read_text()
    [make_line] = [line for line in makefile.splitlines() if "-c constraints.txt" in line]
    make_options, make_extras = pip_install(make_line)
    [run] = [
        value for kind, value in instructions if kind == "RUN" and "-c constraints.txt" in value
    ]
    options, extras = pip_install(run.split("&&")[-1])
    assert options == make_options == ["-c", "constraints.txt"]
    # Every extra the image installs is one `make` installs too, so the suite tested it.
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    reached = set(make_extras)
    for extra in make_extras:
        reached |= {match for dep in optional[extra] for match in re.findall(r"idp\[(\w+)\]", dep)}
    assert extras == {"demo"} and extras <= reached
    assert any("constraints.txt" in value for kind, value in instructions if kind == "COPY")
    [user] = [value for kind, value in instructions if kind == "USER"]
    assert user not in ("root", "0")
    [health] = [value for kind, value in instructions if kind == "HEALTHCHECK"]
    assert "/healthz" in health
    [command] = [value for kind, value in instructions if kind == "CMD"]
    assert command.startswith('["idp", "serve"')
