"""``python -m relying_party_demo.wiki``: serve the app on WIKI_BASE_URL (default port)."""

from __future__ import annotations

from relying_party_demo.common.serve import serve
from relying_party_demo.wiki import create_app

if __name__ == "__main__":
    serve(create_app, "WIKI_BASE_URL")
