"""Key material on disk in ``IDP_KEYS_DIR``: the keyring file, the key files, SAML certificates.

Files only, read and written safely (0600, atomic replace); which key signs when is the
KeyStore's policy, in ``store.py``. With a passphrase (``IDP_KEYS_PASSPHRASE``) new private
keys are written as encrypted PKCS#8 PEM (``{kid}.key.pem``) and read back with it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from typing import Final
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.jwk import RSAKey

from idp.errors import ConfigurationError

KeyKind = Literal["RS256", "ES256", "SAML"]

KINDS: Final[tuple[KeyKind, ...]] = ("RS256", "ES256", "SAML")
RSA_KEY_SIZE: Final = 2048
EC_CURVE: Final = "P-256"
SAML_CERTIFICATE_VALIDITY: Final = timedelta(days=3653)
KEYRING_FILE: Final = "keyring.json"
_ENCRYPTED_PEM: Final = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"

# RFC 7517 §4 public members per kty; anything else (d, p, q, dp, dq, qi, oth) stays private.
_PUBLIC_MEMBERS: Final[dict[str, tuple[str, ...]]] = {
    "RSA": ("n", "e"),
    "EC": ("crv", "x", "y"),
}
# A kid becomes a file name: refuse anything that could leave keys_dir.
_KID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class KeyRecord:
    """One line of the keyring: which key, of what kind, created and signing from when."""

    kid: str
    kind: KeyKind
    created_at: datetime
    activates_at: datetime


@dataclass(frozen=True)
class KeyMaterial:
    """A key read from its files, in every form its users need."""

    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any]
    private_pem: bytes
    jose_key: RSAKey | ECKey
    certificate_pem: str = ""


def format_time(value: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with a ``Z`` suffix."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("time is not a string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("time has no time zone")
    return parsed.astimezone(UTC)


def parse_keyring(path: Path, raw: bytes) -> list[KeyRecord]:
    """Parse the keyring file's bytes (read from ``path``).

    Raises:
        ConfigurationError: the keyring is not a list of valid, distinct key records.

    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ConfigurationError(f"{path}: not valid JSON") from None
    if not isinstance(data, list):
        raise ConfigurationError(f"{path}: must be a JSON list of key records")
    records: list[KeyRecord] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise ValueError("not an object")
            kid, kind = item["kid"], item["kind"]
            if not isinstance(kid, str) or not _KID_PATTERN.fullmatch(kid):
                raise ValueError("bad kid")
            if kind not in KINDS:
                raise ValueError("bad kind")
            record = KeyRecord(
                kid=kid,
                kind=kind,
                created_at=_parse_time(item["created_at"]),
                activates_at=_parse_time(item["activates_at"]),
            )
        except (KeyError, TypeError, ValueError):
            raise ConfigurationError(f"{path}: invalid key record #{index + 1}") from None
        if record.kid in seen:
            raise ConfigurationError(f"{path}: duplicate kid {record.kid!r}")
        seen.add(record.kid)
        records.append(record)
    return records


def write_keyring(path: Path, records: list[KeyRecord]) -> None:
    """Replace the keyring at ``path`` with ``records`` in one atomic step."""
    data = [
        {
            "kid": r.kid,
            "kind": r.kind,
            "created_at": format_time(r.created_at),
            "activates_at": format_time(r.activates_at),
        }
        for r in records
    ]
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".keyring.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        # Readers in other processes see the old or the new keyring, never half of one.
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _public_jwk(private_jwk: dict[str, Any], kid: str, alg: str) -> dict[str, Any]:
    kty = str(private_jwk["kty"])
    public = {"kty": kty, "kid": kid, "use": "sig", "alg": alg}
    public.update({name: private_jwk[name] for name in _PUBLIC_MEMBERS[kty]})
    return public


def _read_file(keys_dir: Path, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path}: key file is missing, though {KEYRING_FILE} lists it: restore it from "
            f"a backup, or move {keys_dir}/ aside and run `idp init` for new keys"
        ) from None
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read: {error.strerror}") from None


@functools.lru_cache(maxsize=32)
def _import_private_key(kind: KeyKind, raw: bytes) -> RSAKey | ECKey:
    """Parse a key file: PEM for SAML, a JWK otherwise; a public key is refused (ValueError).

    Cached by content: checking an RSA private key costs ~30 ms, and every app in a process
    (each test's app on a pytest worker) would parse the same files again.
    """
    if kind == "SAML":
        imported: RSAKey | ECKey = RSAKey.import_key(raw)
    else:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        if kind == "RS256":
            imported = RSAKey.import_key(data)
        else:
            imported = ECKey.import_key(data)
            if data.get("crv") != EC_CURVE:
                raise ValueError("not a P-256 key")
    if not imported.is_private:
        raise ValueError("not a private key")
    return imported


def _decrypt_pem(path: Path, raw: bytes, passphrase: bytes | None) -> bytes:
    """Return the clear PKCS#8 PEM of an encrypted key file; a clear one unchanged."""
    if _ENCRYPTED_PEM not in raw:
        return raw
    if passphrase is None:
        raise ConfigurationError(
            f"{path}: the key is encrypted: set IDP_KEYS_PASSPHRASE to its passphrase"
        )
    try:
        key = serialization.load_pem_private_key(raw, passphrase)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{path}: cannot decrypt the key: IDP_KEYS_PASSPHRASE is wrong (or the file is damaged)"
        ) from None
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _read_jwk_or_pem(
    keys_dir: Path, kid: str, kind: KeyKind, passphrase: bytes | None
) -> tuple[Path, RSAKey | ECKey]:
    """Read a JWS key: its clear JWK file, else its (encrypted) PEM file."""
    path = keys_dir / f"{kid}.jwk.json"
    if path.exists() or not (keys_dir / f"{kid}.key.pem").exists():
        raw = _read_file(keys_dir, path)
        try:
            return path, _import_private_key(kind, raw)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise ConfigurationError(f"{path}: not a valid private {kind} JWK") from None
    path = keys_dir / f"{kid}.key.pem"
    pem = _decrypt_pem(path, _read_file(keys_dir, path), passphrase)
    try:
        imported: RSAKey | ECKey = (RSAKey if kind == "RS256" else ECKey).import_key(pem)
        if not imported.is_private:
            raise ValueError("not a private key")
        if kind == "ES256" and imported.as_dict().get("crv") != EC_CURVE:
            raise ValueError("not a P-256 key")
    except (JoseError, ValueError, TypeError):
        raise ConfigurationError(f"{path}: not a valid private {kind} key") from None
    return path, imported


def read_material(
    keys_dir: Path, kid: str, kind: KeyKind, passphrase: bytes | None = None
) -> KeyMaterial:
    """Read and check the files of key ``kid`` (decrypting them with ``passphrase``).

    Raises:
        ConfigurationError: a file is missing, unreadable, encrypted without the right
            passphrase, or not a private key of ``kind``.

    """
    if kind == "SAML":
        key_path = keys_dir / f"{kid}.key.pem"
        cert_path = keys_dir / f"{kid}.crt.pem"
        key_pem = _decrypt_pem(key_path, _read_file(keys_dir, key_path), passphrase)
        cert_pem = _read_file(keys_dir, cert_path)
        try:
            key = _import_private_key("SAML", key_pem)
            x509.load_pem_x509_certificate(cert_pem)
        except (JoseError, ValueError, TypeError):
            raise ConfigurationError(f"{key_path}: not a valid RSA key and certificate") from None
        jwk = {**key.as_dict(private=True), "kid": kid, "use": "sig", "alg": "RS256"}
        return KeyMaterial(
            private_jwk=jwk,
            public_jwk=_public_jwk(jwk, kid, "RS256"),
            private_pem=key_pem,
            jose_key=key,
            certificate_pem=cert_pem.decode("ascii"),
        )
    path, imported = _read_jwk_or_pem(keys_dir, kid, kind, passphrase)
    try:
        pem = imported.as_pem(private=True)
    except (JoseError, ValueError, TypeError):
        raise ConfigurationError(f"{path}: not a valid private {kind} key") from None
    jwk = {**imported.as_dict(private=True), "kid": kid, "use": "sig"}
    jwk["alg"] = kind
    return KeyMaterial(
        private_jwk=jwk,
        public_jwk=_public_jwk(jwk, kid, kind),
        private_pem=pem,
        jose_key=imported,
    )


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 in one step: the key is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def build_certificate(
    private: rsa.RSAPrivateKey, common_name: str, now: datetime
) -> x509.Certificate:
    """Build the self-signed certificate SAML metadata carries for ``private``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + SAML_CERTIFICATE_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(private.public_key()),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _encrypted_pem(private: PrivateKey, passphrase: bytes) -> bytes:
    # PKCS#8 with the library's best scheme (PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC).
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def generate_key(
    keys_dir: Path,
    kind: KeyKind,
    common_name: str,
    now: datetime,
    passphrase: bytes | None = None,
) -> str:
    """Write the files of a new key of ``kind`` and return its kid (RFC 7638 thumbprint).

    With ``passphrase`` the private key is written encrypted (PKCS#8 PEM), a JWS key as
    ``{kid}.key.pem`` rather than a clear ``{kid}.jwk.json``.
    """
    if kind == "SAML":
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
        key = RSAKey.import_key(private)
        kid = key.thumbprint()
        certificate = build_certificate(private, common_name, now)
        pem = _encrypted_pem(private, passphrase) if passphrase else key.as_pem(private=True)
        _write_private(keys_dir / f"{kid}.key.pem", pem)
        _write_private(
            keys_dir / f"{kid}.crt.pem",
            certificate.public_bytes(serialization.Encoding.PEM),
        )
        return kid
    generated: RSAKey | ECKey
    if kind == "RS256":
        generated = RSAKey.generate_key(RSA_KEY_SIZE, private=True)
    else:
        generated = ECKey.generate_key(EC_CURVE, private=True)
    kid = generated.thumbprint()
    if passphrase:
        private_key = generated.private_key
        assert private_key is not None  # noqa: S101 (generated with private=True)
        _write_private(keys_dir / f"{kid}.key.pem", _encrypted_pem(private_key, passphrase))
        return kid
    jwk = {**generated.as_dict(private=True), "kid": kid, "use": "sig", "alg": kind}
    _write_private(keys_dir / f"{kid}.jwk.json", json.dumps(jwk, indent=2).encode())
    return kid
