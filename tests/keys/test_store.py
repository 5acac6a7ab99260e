"""KeyStore on disk: generation, file modes, JWKS, rotation states, reload, broken files."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from idp.errors import ConfigurationError
from idp.keys.store import KeyStore

DELAY = timedelta(minutes=10)
RETENTION = timedelta(days=1)
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def make_store(path: Path) -> KeyStore:
    return KeyStore(path, activation_delay=DELAY, retention=RETENTION, common_name="idp.test")


@pytest.fixture
def keys_path(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def store(keys_path: Path) -> KeyStore:
    return make_store(keys_path)


@pytest.fixture
def initialised(store: KeyStore) -> KeyStore:
    store.ensure_keys(T0)
    return store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def states(store: KeyStore, now: datetime) -> dict[str, str]:
    return {info.kid: info.state for info in store.list_keys(now)}


def test_new_store_touches_no_disk(keys_path: Path, store: KeyStore) -> None:
    assert store.list_keys(T0) == []
    assert store.public_jwks(T0) == {"keys": []}
    assert store.saml_certificates(T0) == []
    assert not keys_path.exists()


def test_ensure_keys_creates_one_key_per_kind_active_at_once(
    keys_path: Path, store: KeyStore
) -> None:
    created = store.ensure_keys(T0)

    assert sorted(info.kind for info in created) == ["ES256", "RS256", "SAML"]
    assert all(info.state == "active" and info.activates_at == T0 for info in created)
    assert store.list_keys(T0) == created
    by_kind = {info.kind: info.kid for info in created}
    assert (keys_path / f"{by_kind['RS256']}.jwk.json").is_file()
    assert (keys_path / f"{by_kind['ES256']}.jwk.json").is_file()
    assert (keys_path / f"{by_kind['SAML']}.key.pem").is_file()
    assert (keys_path / f"{by_kind['SAML']}.crt.pem").is_file()
    keyring = json.loads((keys_path / "keyring.json").read_text())
    assert [record["kid"] for record in keyring] == [info.kid for info in created]
    assert keyring[0]["activates_at"] == "2030-01-01T12:00:00Z"


def test_ensure_keys_twice_creates_nothing_the_second_time(
    keys_path: Path, initialised: KeyStore
) -> None:
    files = sorted(keys_path.iterdir())
    keyring = (keys_path / "keyring.json").read_bytes()

    assert initialised.ensure_keys(T0 + timedelta(hours=1)) == []
    assert make_store(keys_path).ensure_keys(T0) == []
    assert sorted(keys_path.iterdir()) == files
    assert (keys_path / "keyring.json").read_bytes() == keyring


def test_key_files_are_private(keys_path: Path, initialised: KeyStore) -> None:
    assert mode(keys_path) == 0o700
    files = [path for path in keys_path.iterdir() if not path.name.startswith(".")]
    assert len(files) == 1 + 2 + 2  # keyring, two JWKs, SAML key and certificate
    for path in keys_path.iterdir():
        assert mode(path) == 0o600, path.name


def test_existing_keys_dir_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o750)
    make_store(tmp_path).ensure_keys(T0)
    assert mode(tmp_path) == 0o750


def test_jwks_has_only_public_members(initialised: KeyStore) -> None:
    jwks = initialised.public_jwks(T0)

    assert sorted(key["alg"] for key in jwks["keys"]) == ["ES256", "RS256"]
    for key in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["use"] == "sig"
        if key["kty"] == "RSA":
            assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}
        else:
            assert set(key) == {"kty", "kid", "use", "alg", "crv", "x", "y"}
            assert key["crv"] == "P-256"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_signature_verifies_with_published_key(initialised: KeyStore, alg: str) -> None:
    signing = initialised.signing_key(alg, T0)
    assert signing.alg == alg
    assert signing.private_jwk["kid"] == signing.kid
    token = jwt.encode(
        {"sub": "alice"}, jwt.PyJWK(signing.private_jwk).key, alg, headers={"kid": signing.kid}
    )
    pem_token = jwt.encode({"sub": "bob"}, signing.private_pem, alg)

    published = {key["kid"]: key for key in initialised.public_jwks(T0)["keys"]}
    public = jwt.PyJWK(published[jwt.get_unverified_header(token)["kid"]])
    assert jwt.decode(token, public.key, algorithms=[alg]) == {"sub": "alice"}
    assert jwt.decode(pem_token, public.key, algorithms=[alg]) == {"sub": "bob"}
    assert signing.public_jwk == published[signing.kid]


def test_saml_key_and_certificate(initialised: KeyStore) -> None:
    kid, key_pem, cert_pem = initialised.saml_signing_key(T0)

    assert initialised.saml_certificates(T0) == [(kid, cert_pem)]
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "idp.test"
    assert certificate.issuer == certificate.subject
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    assert certificate.not_valid_before_utc == T0
    assert certificate.not_valid_after_utc - T0 >= timedelta(days=3650)
    private = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    signature = private.sign(b"assertion", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"assertion", padding.PKCS1v15(), hashes.SHA256())


def test_rotated_key_is_published_before_it_signs(initialised: KeyStore) -> None:
    old = {kind: initialised.signing_key(kind, T0).kid for kind in ("RS256", "ES256")}
    old_saml = initialised.saml_signing_key(T0)[0]
    t1 = T0 + timedelta(hours=2)

    created = initialised.rotate(t1)

    assert sorted(info.kind for info in created) == ["ES256", "RS256", "SAML"]
    assert all(info.state == "next" and info.activates_at == t1 + DELAY for info in created)
    new = {info.kind: info.kid for info in created}
    published = [key["kid"] for key in initialised.public_jwks(t1)["keys"]]
    assert sorted(published) == sorted([*old.values(), new["RS256"], new["ES256"]])
    assert published[:2] == [old["RS256"], old["ES256"]]  # active keys first
    assert initialised.signing_key("RS256", t1).kid == old["RS256"]
    assert initialised.saml_signing_key(t1)[0] == old_saml
    assert [kid for kid, _ in initialised.saml_certificates(t1)] == [old_saml, new["SAML"]]

    just_before = t1 + DELAY - timedelta(seconds=1)
    assert initialised.signing_key("ES256", just_before).kid == old["ES256"]

    t2 = t1 + DELAY
    assert initialised.signing_key("RS256", t2).kid == new["RS256"]
    assert initialised.signing_key("ES256", t2).kid == new["ES256"]
    assert initialised.saml_signing_key(t2)[0] == new["SAML"]
    assert states(initialised, t2)[old["RS256"]] == "retiring"
    assert [kid for kid, _ in initialised.saml_certificates(t2)] == [new["SAML"], old_saml]
    still = t2 + RETENTION - timedelta(seconds=1)
    assert old["RS256"] in {key["kid"] for key in initialised.public_jwks(still)["keys"]}

    t3 = t2 + RETENTION
    assert states(initialised, t3)[old["RS256"]] == "retired"
    assert states(initialised, t3)[old_saml] == "retired"
    assert {key["kid"] for key in initialised.public_jwks(t3)["keys"]} == {
        new["RS256"],
        new["ES256"],
    }
    assert [kid for kid, _ in initialised.saml_certificates(t3)] == [new["SAML"]]
    assert (initialised.keys_dir / f"{old['RS256']}.jwk.json").exists()  # files are kept


def test_immediate_rotation_signs_at_once(initialised: KeyStore) -> None:
    t1 = T0 + timedelta(hours=1)
    old = initialised.signing_key("RS256", t1).kid

    created = initialised.rotate(t1, immediate=True)

    assert all(info.state == "active" and info.activates_at == t1 for info in created)
    new = next(info.kid for info in created if info.kind == "RS256")
    assert initialised.signing_key("RS256", t1).kid == new
    assert states(initialised, t1)[old] == "retiring"


def test_immediate_rotation_overtakes_a_scheduled_one(initialised: KeyStore) -> None:
    t1 = T0 + timedelta(hours=1)
    scheduled = next(i.kid for i in initialised.rotate(t1) if i.kind == "RS256")
    urgent = next(i.kid for i in initialised.rotate(t1, immediate=True) if i.kind == "RS256")

    # The older scheduled key never takes over from the newer one, even once it is due.
    later = t1 + DELAY
    assert initialised.signing_key("RS256", later).kid == urgent
    assert states(initialised, later)[scheduled] == "retiring"
    assert states(initialised, t1 + RETENTION)[scheduled] == "retired"


def test_rotate_before_init_fails(keys_path: Path, store: KeyStore) -> None:
    with pytest.raises(ConfigurationError, match="run `idp init`"):
        store.rotate(T0)
    assert not keys_path.exists()


def test_signing_key_before_init_fails(store: KeyStore) -> None:
    with pytest.raises(
        ConfigurationError, match=r"no active RS256 signing key in .*: run `idp init`"
    ):
        store.signing_key("RS256", T0)
    with pytest.raises(ConfigurationError, match="no active SAML signing key"):
        store.saml_signing_key(T0)


def test_signing_key_refuses_saml_kind(initialised: KeyStore) -> None:
    with pytest.raises(ValueError, match="SAML"):
        initialised.signing_key("SAML", T0)


def test_naive_now_is_refused(initialised: KeyStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        initialised.list_keys(datetime(2030, 1, 1))


def test_other_process_rotation_is_seen(keys_path: Path, initialised: KeyStore) -> None:
    server = make_store(keys_path)
    before = server.signing_key("RS256", T0).kid
    stat_before = (keys_path / "keyring.json").stat()

    created = initialised.rotate(T0, immediate=True)  # as `idp key rotate --now` would

    assert (keys_path / "keyring.json").stat().st_ino != stat_before.st_ino  # replaced, not edited
    new = next(info.kid for info in created if info.kind == "RS256")
    assert server.signing_key("RS256", T0).kid == new != before
    assert len(server.list_keys(T0)) == 6


def test_keyring_is_replaced_atomically(keys_path: Path, initialised: KeyStore) -> None:
    initialised.rotate(T0)
    leftovers = [p.name for p in keys_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"kid": "x"}',
        b"[1]",
        b'[{"kid": "abc", "kind": "RS256", "created_at": 0, "activates_at": 0}]',
        b'[{"kid": "../../etc/passwd", "kind": "RS256", '
        b'"created_at": "2030-01-01T00:00:00Z", "activates_at": "2030-01-01T00:00:00Z"}]',
        b'[{"kid": "abc", "kind": "HS256", '
        b'"created_at": "2030-01-01T00:00:00Z", "activates_at": "2030-01-01T00:00:00Z"}]',
        b'[{"kid": "abc", "kind": "RS256", '
        b'"created_at": "yesterday", "activates_at": "2030-01-01T00:00:00Z"}]',
        b'[{"kid": "abc", "kind": "RS256", '
        b'"created_at": "2030-01-01T00:00:00", "activates_at": "2030-01-01T00:00:00Z"}]',
    ],
)
def test_corrupt_keyring_is_a_configuration_error(
    keys_path: Path, initialised: KeyStore, content: bytes
) -> None:
    path = keys_path / "keyring.json"
    path.write_bytes(content)
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock

    with pytest.raises(ConfigurationError) as raised:
        make_store(keys_path).list_keys(T0)
    message = str(raised.value)
    assert "keyring.json" in message and "\n" not in message
    with pytest.raises(ConfigurationError, match="keyring.json"):
        initialised.signing_key("RS256", T0)  # the running store notices the change too


def test_duplicate_kid_is_a_configuration_error(keys_path: Path, initialised: KeyStore) -> None:
    path = keys_path / "keyring.json"
    records = json.loads(path.read_text())
    path.write_text(json.dumps(records + records[:1]))
    with pytest.raises(ConfigurationError, match="duplicate kid"):
        make_store(keys_path).list_keys(T0)


def test_missing_jwk_file_is_a_configuration_error(keys_path: Path, initialised: KeyStore) -> None:
    kid = initialised.signing_key("RS256", T0).kid
    (keys_path / f"{kid}.jwk.json").unlink()
    with pytest.raises(ConfigurationError, match=f"{kid}.jwk.json: key file is missing"):
        make_store(keys_path).public_jwks(T0)


def test_missing_certificate_is_a_configuration_error(
    keys_path: Path, initialised: KeyStore
) -> None:
    kid = initialised.saml_signing_key(T0)[0]
    (keys_path / f"{kid}.crt.pem").unlink()
    with pytest.raises(ConfigurationError, match=f"{kid}.crt.pem: key file is missing"):
        make_store(keys_path).saml_certificates(T0)


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
def test_invalid_jwk_file_is_a_configuration_error(
    keys_path: Path, initialised: KeyStore, kind: str
) -> None:
    kid = initialised.signing_key(kind, T0).kid
    path = keys_path / f"{kid}.jwk.json"
    public = next(k for k in initialised.public_jwks(T0)["keys"] if k["kid"] == kid)
    path.write_text(json.dumps(public))  # the private half is gone

    with pytest.raises(ConfigurationError, match=f"{kid}.jwk.json: not a valid private {kind}"):
        make_store(keys_path).signing_key(kind, T0)


def test_jwk_of_the_wrong_curve_is_a_configuration_error(
    keys_path: Path, initialised: KeyStore
) -> None:
    from joserfc.jwk import ECKey

    kid = initialised.signing_key("ES256", T0).kid
    p384 = ECKey.generate_key("P-384", private=True).as_dict(private=True)
    (keys_path / f"{kid}.jwk.json").write_text(json.dumps(p384))
    with pytest.raises(ConfigurationError, match=f"{kid}.jwk.json: not a valid private ES256"):
        make_store(keys_path).signing_key("ES256", T0)


def test_jwk_file_not_an_object_is_a_configuration_error(
    keys_path: Path, initialised: KeyStore
) -> None:
    kid = initialised.signing_key("RS256", T0).kid
    (keys_path / f"{kid}.jwk.json").write_text("[]")
    with pytest.raises(ConfigurationError, match=f"{kid}.jwk.json: not a valid private RS256"):
        make_store(keys_path).public_jwks(T0)


def test_has_keys(store: KeyStore) -> None:
    assert not store.has_keys()
    store.ensure_keys(T0)
    assert store.has_keys()


def test_invalid_saml_key_is_a_configuration_error(keys_path: Path, initialised: KeyStore) -> None:
    kid = initialised.saml_signing_key(T0)[0]
    (keys_path / f"{kid}.key.pem").write_text("garbage")
    with pytest.raises(ConfigurationError, match=f"{kid}.key.pem: not a valid RSA key"):
        make_store(keys_path).saml_signing_key(T0)
