"""Signing keys in ``IDP_KEYS_DIR``: generate, rotate, publish (RFC 7517 JWKS) and load them.

Key states come from the clock, never from storage: next -> active -> retiring -> retired.
The files themselves (keyring, key files, certificates) are read and written in ``material.py``.
"""

from __future__ import annotations

import fcntl
import os
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

from flask import Flask
from flask import current_app
from joserfc.jwk import ECKey
from joserfc.jwk import RSAKey

from idp.errors import ConfigurationError
from idp.keys.material import KEYRING_FILE
from idp.keys.material import KINDS
from idp.keys.material import KeyKind
from idp.keys.material import KeyMaterial
from idp.keys.material import KeyRecord
from idp.keys.material import generate_key
from idp.keys.material import parse_keyring
from idp.keys.material import read_material
from idp.keys.material import write_keyring
from idp.settings import Settings

KeyState = Literal["next", "active", "retiring", "retired"]

JWK_KINDS: Final[tuple[KeyKind, ...]] = ("RS256", "ES256")
PUBLISHED_STATES: Final[frozenset[KeyState]] = frozenset({"next", "active", "retiring"})
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


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(UTC)


class KeyStore:
    """The RS256, ES256 and SAML signing keys of one ``keys_dir``, reloaded when it changes."""

    def __init__(
        self,
        keys_dir: Path,
        activation_delay: timedelta,
        retention: timedelta,
        *,
        common_name: str = "localhost",
        passphrase: str | None = None,
    ) -> None:
        self.keys_dir = Path(keys_dir)
        self._passphrase = passphrase.encode() if passphrase else None
        self.activation_delay = activation_delay
        self.retention = retention
        self.common_name = common_name
        self._lock = threading.RLock()
        self._signature: tuple[int, int, int] | None = None
        self._records: list[KeyRecord] = []
        self._materials: dict[str, KeyMaterial] = {}

    @property
    def keyring_path(self) -> Path:
        return self.keys_dir / KEYRING_FILE

    # -- reading -------------------------------------------------------------------------------

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

    def _read_records(self) -> tuple[tuple[int, int, int] | None, list[KeyRecord]]:
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
        return signature, parse_keyring(self.keyring_path, raw)

    def _refresh(self) -> list[KeyRecord]:
        with self._lock:
            signature = self._stat_signature()
            if signature != self._signature:
                self._signature, self._records = self._read_records()
            return list(self._records)

    def _load_material(self, record: KeyRecord | KeyInfo) -> KeyMaterial:
        with self._lock:
            material = self._materials.get(record.kid)
            if material is None:
                material = read_material(self.keys_dir, record.kid, record.kind, self._passphrase)
                self._materials[record.kid] = material
            return material

    # -- states --------------------------------------------------------------------------------

    def _states(self, records: list[KeyRecord], now: datetime) -> list[KeyInfo]:
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
    def _writing(self) -> Iterator[list[KeyRecord]]:
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

    def _add(
        self, kinds: list[tuple[KeyKind, datetime]], records: list[KeyRecord], now: datetime
    ) -> list[KeyInfo]:
        created: list[KeyRecord] = []
        for kind, activates_at in kinds:
            kid = generate_key(self.keys_dir, kind, self.common_name, now, self._passphrase)
            created.append(KeyRecord(kid, kind, now, activates_at))
        # Key files first, keyring last: whoever reads the new keyring finds every file.
        write_keyring(self.keyring_path, records + created)
        self._signature, self._records = self._read_records()
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
        passphrase=settings.keys_passphrase,
    )


def get_key_store(app: Flask | None = None) -> KeyStore:
    """Return the KeyStore of ``app`` (default: the current app)."""
    store: KeyStore = (app or current_app).extensions["idp.keys"]
    return store
