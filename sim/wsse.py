"""WS-Security UsernameToken checking, as an ONVIF camera does it.

A camera computes ``Base64(SHA-1(nonce + created + password))`` and compares it with the
PasswordDigest; it rejects a token whose ``Created`` is too far from its *own* clock (so a
client must apply the camera's clock offset) and a nonce it has already seen.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections import deque

from lxml import etree

WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST_TYPE_SUFFIX = "#PasswordDigest"


class NonceCache:
    """The last nonces a camera accepted (replays are refused)."""

    def __init__(self, size: int = 512) -> None:
        self._order: deque[str] = deque(maxlen=size)
        self._seen: set[str] = set()

    def seen(self, nonce: str) -> bool:
        return nonce in self._seen

    def add(self, nonce: str) -> None:
        if len(self._order) == self._order.maxlen:
            self._seen.discard(self._order[0])
        self._order.append(nonce)
        self._seen.add(nonce)


def check_username_token(
    envelope: etree._Element,
    username: str,
    password: str,
    camera_now: dt.datetime,
    tolerance_s: float,
    nonces: NonceCache,
) -> str | None:
    """None if the envelope carries a valid token for this camera, else why not."""
    token = envelope.find(f".//{{{WSSE_NS}}}UsernameToken")
    if token is None:
        return "no WS-Security UsernameToken"
    user = token.findtext(f"{{{WSSE_NS}}}Username")
    password_el = token.find(f"{{{WSSE_NS}}}Password")
    nonce_text = token.findtext(f"{{{WSSE_NS}}}Nonce")
    created_text = token.findtext(f"{{{WSU_NS}}}Created")
    if user != username or password_el is None:
        return "unknown user"
    given = (password_el.text or "").strip()
    if not password_el.get("Type", "").endswith(DIGEST_TYPE_SUFFIX):
        # PasswordText would put the password on the wire in clear; many cameras accept it,
        # the simulator does not, so a client that sends it is caught.
        return "PasswordText refused: use PasswordDigest"
    if not nonce_text or not created_text:
        return "PasswordDigest without Nonce or Created"
    try:
        nonce = base64.b64decode(nonce_text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "Nonce is not base64"
    try:
        created = dt.datetime.fromisoformat(created_text.strip().replace("Z", "+00:00"))
    except ValueError:
        return "Created is not a timestamp"
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    expected = base64.b64encode(
        hashlib.sha1(nonce + created_text.strip().encode() + password.encode()).digest()
    ).decode()
    if not hmac.compare_digest(expected, given):
        return "wrong password"
    skew = abs((created - camera_now).total_seconds())
    if skew > tolerance_s:
        return f"Created is {skew:.0f} s away from the camera's clock"
    if nonces.seen(nonce_text):
        return "nonce replayed"
    nonces.add(nonce_text)
    return None
