"""Signing keys (RS256, ES256 JWKs and the SAML certificate) kept in ``IDP_KEYS_DIR``."""

from __future__ import annotations
