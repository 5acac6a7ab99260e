"""``python -m relying_party_demo.notes``: serve the app on NOTES_BASE_URL (default port)."""

from __future__ import annotations

from relying_party_demo.common.serve import serve
from relying_party_demo.notes import create_app

if __name__ == "__main__":
    serve(create_app, "NOTES_BASE_URL")
