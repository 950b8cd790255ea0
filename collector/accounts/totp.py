"""The optional second factor: time-based one-time codes (RFC 6238, ``pyotp``).

A code is accepted for the current 30-second step or the one before or after (clocks of
phones drift), and only once: the step it was accepted for is stored, and a code of that
step or an earlier one is refused, so a code seen over a shoulder cannot be used again.
"""

from __future__ import annotations

import time

import pyotp

ISSUER = "Vigil"


def new_secret() -> str:
    return pyotp.random_base32()


def uri(secret: str, email: str) -> str:
    """The ``otpauth://`` address an authenticator app takes (often as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def accepted_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The step ``code`` is valid for (newer than ``last_step``), or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    at = time.time() if now is None else now
    step = totp.timecode(at)
    for candidate in (step - 1, step, step + 1):
        if candidate > last_step and pyotp.utils.strings_equal(totp.generate_otp(candidate), code):
            return candidate
    return None
