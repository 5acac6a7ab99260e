"""OpenID Provider: Authlib's authorization server over our storage, claims and login."""

from __future__ import annotations
