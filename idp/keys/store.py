"""Signing keys in ``IDP_KEYS_DIR``: generate, rotate, publish (RFC 7517 JWKS) and load them.

Key states come from the clock, never from storage: next -> active -> retiring -> retired.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from typing import Final
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask import current_app
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.jwk import RSAKey

from idp.errors import ConfigurationError
from idp.settings import Settings

KeyKind = Literal["RS256", "ES256", "SAML"]
KeyState = Literal["next", "active", "retiring", "retired"]

KINDS: Final[tuple[KeyKind, ...]] = ("RS256", "ES256", "SAML")
JWK_KINDS: Final[tuple[KeyKind, ...]] = ("RS256", "ES256")
PUBLISHED_STATES: Final[frozenset[KeyState]] = frozenset({"next", "active", "retiring"})
RSA_KEY_SIZE: Final = 2048
EC_CURVE: Final = "P-256"
SAML_CERTIFICATE_VALIDITY: Final = timedelta(days=3653)
KEYRING_FILE: Final = "keyring.json"

# RFC 7517 §4 public members per kty; anything else (d, p, q, dp, dq, qi, oth) stays private.
_PUBLIC_MEMBERS: Final[dict[str, tuple[str, ...]]] = {
    "RSA": ("n", "e"),
    "EC": ("crv", "x", "y"),
}
# A kid becomes a file name: refuse anything that could leave keys_dir.
_KID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_STATE_ORDER: Final[dict[KeyState, int]] = {"active": 0, "next": 1, "retiring": 2, "retired": 3}


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    kind: KeyKind
    created_at: datetime
    activates_at: datetime
    state: KeyState

    @property
    def is_published(self) -> bool:
        """Return whether the key is in the JWKS / SAML metadata (next, active or retiring)."""
        return self.state in PUBLISHED_STATES


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any]
    private_pem: bytes
    # Imported once per process: building an RSA key from its JWK numbers costs ~40 ms
    # (cryptography validates it), a hundred times the signature itself.
    jose_key: RSAKey | ECKey


@dataclass(frozen=True)
class _Record:
    kid: str
    kind: KeyKind
    created_at: datetime
    activates_at: datetime


@dataclass(frozen=True)
class _Material:
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any]
    private_pem: bytes
    jose_key: RSAKey | ECKey
    certificate_pem: str = ""


def format_time(value: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with a ``Z`` suffix."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(UTC)


def _public_jwk(private_jwk: dict[str, Any], kid: str, alg: str) -> dict[str, Any]:
    kty = str(private_jwk["kty"])
    public = {"kty": kty, "kid": kid, "use": "sig", "alg": alg}
    public.update({name: private_jwk[name] for name in _PUBLIC_MEMBERS[kty]})
    return public


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


class KeyStore:
    """The RS256, ES256 and SAML signing keys of one ``keys_dir``, reloaded when it changes."""

    def __init__(
        self,
        keys_dir: Path,
        activation_delay: timedelta,
        retention: timedelta,
        *,
        common_name: str = "localhost",
    ) -> None:
        self.keys_dir = Path(keys_dir)
        self.activation_delay = activation_delay
        self.retention = retention
        self.common_name = common_name
        self._lock = threading.RLock()
        self._signature: tuple[int, int, int] | None = None
        self._records: list[_Record] = []
        self._materials: dict[str, _Material] = {}

    @property
    def keyring_path(self) -> Path:
        return self.keys_dir / KEYRING_FILE

    # -- reading -------------------------------------------------------------------------------

    def _parse_time(self, value: Any) -> datetime:
        if not isinstance(value, str):
            raise ValueError("time is not a string")
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("time has no time zone")
        return parsed.astimezone(UTC)

    def _parse_keyring(self, raw: bytes) -> list[_Record]:
        path = self.keyring_path
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ConfigurationError(f"{path}: not valid JSON") from None
        if not isinstance(data, list):
            raise ConfigurationError(f"{path}: must be a JSON list of key records")
        records: list[_Record] = []
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
                record = _Record(
                    kid=kid,
                    kind=kind,
                    created_at=self._parse_time(item["created_at"]),
                    activates_at=self._parse_time(item["activates_at"]),
                )
            except (KeyError, TypeError, ValueError):
                raise ConfigurationError(f"{path}: invalid key record #{index + 1}") from None
            if record.kid in seen:
                raise ConfigurationError(f"{path}: duplicate kid {record.kid!r}")
            seen.add(record.kid)
            records.append(record)
        return records

    def _stat_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.keyring_path.stat()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise self._not_a_directory() from None
        except OSError as error:
            raise ConfigurationError(
                f"{self.keyring_path}: cannot read: {error.strerror}"
            ) from None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _not_a_directory(self) -> ConfigurationError:
        return ConfigurationError(f"keys_dir: {self.keys_dir} is not a directory")

    def _read_records(self) -> tuple[tuple[int, int, int] | None, list[_Record]]:
        signature = self._stat_signature()
        if signature is None:
            return None, []
        try:
            raw = self.keyring_path.read_bytes()
        except FileNotFoundError:
            return None, []
        except OSError as error:
            raise ConfigurationError(
                f"{self.keyring_path}: cannot read: {error.strerror}"
            ) from None
        return signature, self._parse_keyring(raw)

    def _refresh(self) -> list[_Record]:
        with self._lock:
            signature = self._stat_signature()
            if signature != self._signature:
                self._signature, self._records = self._read_records()
            return list(self._records)

    def _load_material(self, record: _Record | KeyInfo) -> _Material:
        with self._lock:
            material = self._materials.get(record.kid)
            if material is None:
                material = self._read_material(record)
                self._materials[record.kid] = material
            return material

    def _read_file(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(
                f"{path}: key file is missing, though {KEYRING_FILE} lists it: restore it from "
                f"a backup, or move {self.keys_dir}/ aside and run `idp init` for new keys"
            ) from None
        except OSError as error:
            raise ConfigurationError(f"{path}: cannot read: {error.strerror}") from None

    def _read_material(self, record: _Record | KeyInfo) -> _Material:
        if record.kind == "SAML":
            key_path = self.keys_dir / f"{record.kid}.key.pem"
            cert_path = self.keys_dir / f"{record.kid}.crt.pem"
            key_pem = self._read_file(key_path)
            cert_pem = self._read_file(cert_path)
            try:
                key = RSAKey.import_key(key_pem)
                if not key.is_private:
                    raise ValueError("not a private key")
                x509.load_pem_x509_certificate(cert_pem)
            except (JoseError, ValueError, TypeError):
                raise ConfigurationError(
                    f"{key_path}: not a valid RSA key and certificate"
                ) from None
            jwk = {**key.as_dict(private=True), "kid": record.kid, "use": "sig", "alg": "RS256"}
            return _Material(
                private_jwk=jwk,
                public_jwk=_public_jwk(jwk, record.kid, "RS256"),
                private_pem=key_pem,
                jose_key=key,
                certificate_pem=cert_pem.decode("ascii"),
            )
        path = self.keys_dir / f"{record.kid}.jwk.json"
        raw = self._read_file(path)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            imported: RSAKey | ECKey
            if record.kind == "RS256":
                imported = RSAKey.import_key(data)
            else:
                imported = ECKey.import_key(data)
                if data.get("crv") != EC_CURVE:
                    raise ValueError("not a P-256 key")
            if not imported.is_private:
                raise ValueError("not a private key")
            pem = imported.as_pem(private=True)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise ConfigurationError(f"{path}: not a valid private {record.kind} JWK") from None
        jwk = {**imported.as_dict(private=True), "kid": record.kid, "use": "sig"}
        jwk["alg"] = record.kind
        return _Material(
            private_jwk=jwk,
            public_jwk=_public_jwk(jwk, record.kid, record.kind),
            private_pem=pem,
            jose_key=imported,
        )

    # -- states --------------------------------------------------------------------------------

    def _states(self, records: list[_Record], now: datetime) -> list[KeyInfo]:
        now = _require_aware(now)
        infos: list[KeyInfo] = []
        for kind in KINDS:
            # Creation order (keyring order on ties): a key is superseded by the first
            # later-created key that starts signing; states then never go backwards.
            chain = sorted((r for r in records if r.kind == kind), key=lambda r: r.created_at)
            active_index = max(
                (i for i, r in enumerate(chain) if r.activates_at <= now), default=None
            )
            for index, record in enumerate(chain):
                state: KeyState
                if active_index is None or index > active_index:
                    state = "next"
                elif index == active_index:
                    state = "active"
                else:
                    superseded_at = min(r.activates_at for r in chain[index + 1 :])
                    retiring = now < superseded_at + self.retention
                    state = "retiring" if retiring else "retired"
                infos.append(
                    KeyInfo(
                        kid=record.kid,
                        kind=record.kind,
                        created_at=record.created_at,
                        activates_at=record.activates_at,
                        state=state,
                    )
                )
        return infos

    def list_keys(self, now: datetime) -> list[KeyInfo]:
        """List every key with its state at ``now``, by kind then creation."""
        return self._states(self._refresh(), now)

    def verify_keys(self, now: datetime) -> None:
        """Load every published key, so a missing or broken key file is found now.

        Raises:
            ConfigurationError: ``keys_dir`` is unusable or a key file is missing or invalid.

        """
        for info in self.list_keys(now):
            if info.is_published:
                self._load_material(info)

    def has_keys(self) -> bool:
        """Return whether the keyring holds any key."""
        return bool(self._refresh())

    def _published(self, kinds: tuple[KeyKind, ...], now: datetime) -> list[KeyInfo]:
        infos = [i for i in self.list_keys(now) if i.kind in kinds and i.is_published]
        # Active first, then next, then retiring (newest first within a state).
        infos.sort(key=lambda i: i.created_at, reverse=True)
        infos.sort(key=lambda i: (_STATE_ORDER[i.state], kinds.index(i.kind)))
        return infos

    def _active(self, kind: KeyKind, now: datetime) -> KeyInfo:
        for info in self.list_keys(now):
            if info.kind == kind and info.state == "active":
                return info
        raise ConfigurationError(
            f"no active {kind} signing key in {self.keys_dir}/: run `idp init`"
        )

    # -- public reads --------------------------------------------------------------------------

    def signing_key(self, kind: str, now: datetime) -> SigningKey:
        """Return the key that signs JWTs of ``kind`` (``RS256`` or ``ES256``) at ``now``.

        Raises:
            ConfigurationError: no key of that kind is active (``idp init`` never ran).

        """
        if kind not in JWK_KINDS:
            raise ValueError(f"not a JWS signing kind: {kind!r}")
        info = self._active(kind, now)
        material = self._load_material(info)
        return SigningKey(
            kid=info.kid,
            alg=kind,
            private_jwk=dict(material.private_jwk),
            public_jwk=dict(material.public_jwk),
            private_pem=material.private_pem,
            jose_key=material.jose_key,
        )

    def public_jwks(self, now: datetime) -> dict[str, list[dict[str, Any]]]:
        """Return the JWK Set of every published RS256/ES256 key, public members only."""
        keys = []
        for info in self._published(JWK_KINDS, now):
            keys.append(dict(self._load_material(info).public_jwk))
        return {"keys": keys}

    def saml_certificates(self, now: datetime) -> list[tuple[str, str]]:
        """Return ``(kid, PEM certificate)`` of every published SAML key, active first."""
        certificates = []
        for info in self._published(("SAML",), now):
            material = self._load_material(info)
            certificates.append((info.kid, material.certificate_pem))
        return certificates

    def saml_signing_key(self, now: datetime) -> tuple[str, str, str]:
        """Return ``(kid, private key PEM, certificate PEM)`` of the active SAML key.

        Raises:
            ConfigurationError: no SAML key is active (``idp init`` never ran).

        """
        info = self._active("SAML", now)
        material = self._load_material(info)
        return info.kid, material.private_pem.decode("ascii"), material.certificate_pem

    # -- writing -------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[list[_Record]]:
        """Lock the keyring against other processes and yield its records, freshly read."""
        try:
            self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            raise self._not_a_directory() from None
        except OSError as error:
            raise ConfigurationError(
                f"keys_dir: cannot create {self.keys_dir}: {error.strerror}"
            ) from None
        fd = os.open(self.keys_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._lock:
                _, records = self._read_records()
                yield records
        finally:
            os.close(fd)  # releases the flock

    def _write_keyring(self, records: list[_Record]) -> None:
        data = [
            {
                "kid": r.kid,
                "kind": r.kind,
                "created_at": format_time(r.created_at),
                "activates_at": format_time(r.activates_at),
            }
            for r in records
        ]
        fd, temp = tempfile.mkstemp(dir=self.keys_dir, prefix=".keyring.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=2)
                file.write("\n")
                file.flush()
                os.fsync(file.fileno())
            # Readers in other processes see the old or the new keyring, never half of one.
            os.replace(temp, self.keyring_path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self._signature, self._records = self._read_records()

    def _generate(self, kind: KeyKind, now: datetime) -> str:
        """Write the files of a new key of ``kind`` and return its kid (RFC 7638 thumbprint)."""
        if kind == "SAML":
            private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
            key = RSAKey.import_key(private)
            kid = key.thumbprint()
            certificate = build_certificate(private, self.common_name, now)
            _write_private(self.keys_dir / f"{kid}.key.pem", key.as_pem(private=True))
            _write_private(
                self.keys_dir / f"{kid}.crt.pem",
                certificate.public_bytes(serialization.Encoding.PEM),
            )
            return kid
        generated: RSAKey | ECKey
        if kind == "RS256":
            generated = RSAKey.generate_key(RSA_KEY_SIZE, private=True)
        else:
            generated = ECKey.generate_key(EC_CURVE, private=True)
        kid = generated.thumbprint()
        jwk = {**generated.as_dict(private=True), "kid": kid, "use": "sig", "alg": kind}
        _write_private(self.keys_dir / f"{kid}.jwk.json", json.dumps(jwk, indent=2).encode())
        return kid

    def _add(
        self, kinds: list[tuple[KeyKind, datetime]], records: list[_Record], now: datetime
    ) -> list[KeyInfo]:
        created: list[_Record] = []
        for kind, activates_at in kinds:
            kid = self._generate(kind, now)
            created.append(_Record(kid, kind, now, activates_at))
        # Key files first, keyring last: whoever reads the new keyring finds every file.
        self._write_keyring(records + created)
        infos = {i.kid: i for i in self._states(records + created, now)}
        return [infos[r.kid] for r in created]

    def ensure_keys(self, now: datetime) -> list[KeyInfo]:
        """Create one key, active at once, of each kind that has none; return those created."""
        now = _require_aware(now)
        with self._writing() as records:
            present = {r.kind for r in records}
            missing = [(kind, now) for kind in KINDS if kind not in present]
            if not missing:
                return []
            return self._add(missing, records, now)

    def rotate(self, now: datetime, *, immediate: bool = False) -> list[KeyInfo]:
        """Add a new key of each kind, signing after ``activation_delay`` (at once if immediate).

        The delay lets relying parties fetch the new key from ``/jwks`` before it signs.

        Raises:
            ConfigurationError: the keyring is empty (``idp init`` never ran).

        """
        now = _require_aware(now)
        missing = ConfigurationError(f"no signing keys in {self.keys_dir}/: run `idp init`")
        if not self._refresh():
            raise missing  # before _writing(), which would create keys_dir
        with self._writing() as records:
            if not records:
                raise missing
            present = {r.kind for r in records}
            later = now if immediate else now + self.activation_delay
            # A kind with no key at all has nothing to wait for.
            kinds = [(kind, later if kind in present else now) for kind in KINDS]
            return self._add(kinds, records, now)


def init_app(app: Flask, settings: Settings) -> None:
    """Build this app's KeyStore (without touching the disk) into ``app.extensions``."""
    app.extensions["idp.keys"] = KeyStore(
        Path(settings.keys_dir),
        activation_delay=settings.jwks_max_age,
        retention=settings.key_retention,
        common_name=urlsplit(settings.issuer).hostname or "localhost",
    )


def get_key_store(app: Flask | None = None) -> KeyStore:
    """Return the KeyStore of ``app`` (default: the current app)."""
    store: KeyStore = (app or current_app).extensions["idp.keys"]
    return store
