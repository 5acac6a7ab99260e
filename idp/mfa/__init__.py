"""Second factors: TOTP (RFC 6238), recovery codes, the ``otp`` login step and step-up.

``pending.py`` holds the state between the password and the second factor; any factor (TOTP
here, passkeys elsewhere) completes it with ``complete_second_factor(amr)``.
"""

from __future__ import annotations
