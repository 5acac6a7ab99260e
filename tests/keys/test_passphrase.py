"""Private key files encrypted with ``IDP_KEYS_PASSPHRASE`` (PKCS#8), read back only with it."""

from __future__ import annotations

import shutil
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from idp.errors import ConfigurationError
from idp.keys.store import KeyStore
from idp.keys.store import get_key_store
from tests.keys.test_store import DELAY
from tests.keys.test_store import RETENTION
from tests.keys.test_store import T0
from tests.keys.test_store import mode

PASSPHRASE = "correct horse battery staple, for the keys"


def encrypted_store(path: Path, passphrase: str | None = PASSPHRASE) -> KeyStore:
    return KeyStore(
        path,
        activation_delay=DELAY,
        retention=RETENTION,
        common_name="idp.test",
        passphrase=passphrase,
    )


@pytest.fixture(scope="module")
def encrypted_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys written with the passphrase, once per module (RSA key generation costs)."""
    keys = tmp_path_factory.mktemp("encrypted") / "keys"
    encrypted_store(keys).ensure_keys(datetime.now(UTC))
    return keys


@pytest.fixture
def encrypted(encrypted_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(encrypted_template, tmp_path / "encrypted-keys"))


def signs(store: KeyStore) -> None:
    """Each kind of key signs something its published (or certified) public key verifies."""
    jwks = store.public_jwks(T0)
    for alg in ("RS256", "ES256"):
        key = store.signing_key(alg, T0)
        token = jwt.encode({"sub": "x"}, key.private_pem, algorithm=alg, headers={"kid": key.kid})
        [public] = [k for k in jwks["keys"] if k["kid"] == key.kid]
        verifier = jwt.PyJWK(public).key
        assert jwt.decode(token, verifier, algorithms=[alg]) == {"sub": "x"}
    _, key_pem, certificate = store.saml_signing_key(T0)
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----")  # clear in memory only
    serialization.load_pem_private_key(key_pem.encode(), None)
    assert certificate.startswith("-----BEGIN CERTIFICATE-----")


def test_keys_are_written_encrypted_and_read_with_the_passphrase(encrypted: Path) -> None:
    keys = encrypted

    private = sorted(keys.glob("*.key.pem"))
    assert len(private) == 3 and not list(keys.glob("*.jwk.json"))
    for path in private:
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert mode(path) == 0o600
        with pytest.raises(TypeError):  # no passphrase, no key
            serialization.load_pem_private_key(path.read_bytes(), None)
        serialization.load_pem_private_key(path.read_bytes(), PASSPHRASE.encode())
    signs(encrypted_store(keys))  # a fresh process reading the files


@pytest.mark.parametrize(
    ("passphrase", "message"),
    [
        (None, "the key is encrypted: set IDP_KEYS_PASSPHRASE"),
        ("not the passphrase", "cannot decrypt the key: IDP_KEYS_PASSPHRASE is wrong"),
    ],
    ids=["missing", "wrong"],
)
def test_a_missing_or_wrong_passphrase_is_a_clear_error(
    encrypted: Path, passphrase: str | None, message: str
) -> None:
    store = encrypted_store(encrypted, passphrase)
    with pytest.raises(ConfigurationError, match=message) as error:
        store.verify_keys(T0)
    assert PASSPHRASE not in str(error.value)


def test_clear_keys_stay_readable_and_a_rotation_writes_encrypted_ones(keys_dir: Path) -> None:
    keys = keys_dir  # the test run's clear keys, written before the passphrase was set
    clear = set(keys.glob("*.jwk.json")) | set(keys.glob("*.key.pem"))

    store = encrypted_store(keys)
    signs(store)
    store.rotate(T0, immediate=True)

    added = (set(keys.glob("*.key.pem")) | set(keys.glob("*.jwk.json"))) - clear
    assert len(added) == 3
    assert all(b"ENCRYPTED PRIVATE KEY" in path.read_bytes() for path in added)
    signs(encrypted_store(keys))  # the new, encrypted keys sign now
    later = T0 + timedelta(seconds=1)
    assert {k.kid for k in encrypted_store(keys).list_keys(later)} >= {
        path.name.split(".")[0] for path in clear | added
    }


def test_the_app_reads_the_passphrase_from_the_environment(
    settings: dict[str, Any], encrypted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from idp import create_app
    from idp.db import get_database

    keys = encrypted
    monkeypatch.setenv("IDP_KEYS_PASSPHRASE", PASSPHRASE)
    with_it = create_app({**settings, "keys_dir": str(keys)})
    monkeypatch.delenv("IDP_KEYS_PASSPHRASE")
    without = create_app({**settings, "keys_dir": str(keys)})
    try:
        jwks = with_it.test_client().get("/jwks")
        assert jwks.status_code == 200 and len(jwks.get_json()["keys"]) == 2
        # What `idp init` and `idp serve` check first, and print as one line.
        with without.app_context(), pytest.raises(ConfigurationError, match="IDP_KEYS_PASSPHRASE"):
            get_key_store(without).verify_keys(datetime.now(UTC))
    finally:
        for app in (with_it, without):
            get_database(app).engine.dispose()
