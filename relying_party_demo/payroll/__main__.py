"""``python -m relying_party_demo.payroll [metadata]``: serve the app, or print its SP metadata."""

from __future__ import annotations

import sys

from relying_party_demo.common.serve import serve
from relying_party_demo.payroll import create_app
from relying_party_demo.payroll import sp_metadata


def main(argv: list[str]) -> int:
    if argv == ["metadata"]:
        # For `idp sp add --metadata`: creates the SP key and certificate if they are missing.
        app = create_app()
        sys.stdout.write(sp_metadata(app.extensions["payroll.sp_settings"]))
        return 0
    if argv:
        sys.stderr.write("usage: python -m relying_party_demo.payroll [metadata]\n")
        return 2
    serve(create_app, "PAYROLL_BASE_URL")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
