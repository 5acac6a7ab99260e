"""A device's name from its User-Agent string: browser and operating system, roughly (pure).

Good enough to tell one's own devices apart; the raw string stays in the session record.
"""

from __future__ import annotations

import re

# Order matters: Edge and Opera say "Chrome", Chrome says "Safari", every iOS browser says
# "Safari" too. The first pattern that matches names the browser.
_BROWSERS = (
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"\b(?:OPR|Opera)/")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Firefox", re.compile(r"\b(?:Firefox|FxiOS)/")),
    ("Chrome", re.compile(r"\b(?:Chrome|Chromium|CriOS)/")),
    ("Safari", re.compile(r"\bVersion/[\d.]+.*\bSafari/")),
    ("curl", re.compile(r"^curl/")),
)
_SYSTEMS = (
    ("iOS", re.compile(r"\b(?:iPhone|iPad|iPod)\b")),
    ("Android", re.compile(r"\bAndroid\b")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("Linux", re.compile(r"\bLinux\b|\bX11\b")),
)
UNKNOWN = "Unknown device"


def describe_user_agent(user_agent: str | None) -> str:
    """Return "Browser on System" (or what of it is known) for a User-Agent string."""
    text = (user_agent or "")[:512]
    browser = next((name for name, pattern in _BROWSERS if pattern.search(text)), None)
    system = next((name for name, pattern in _SYSTEMS if pattern.search(text)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or UNKNOWN
