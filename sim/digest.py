"""HTTP/RTSP Digest authentication (RFC 2617, MD5), the server side.

Cameras protect RTSP and snapshot URLs with Digest; the simulator checks it as they do.
"""

from __future__ import annotations

import hashlib
import secrets


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def challenge(realm: str, qop: bool) -> tuple[str, str]:
    """A fresh nonce and the ``WWW-Authenticate`` value offering it."""
    nonce = secrets.token_hex(16)
    value = f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5'
    if qop:
        value += ', qop="auth"'
    return nonce, value


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of a ``Digest`` Authorization header, None if it is not Digest."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    i = 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            end = rest.find('"', i + 1)
            if end < 0:
                return None
            params[key] = rest[i + 1 : end]
            i = end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return params


def verify(
    header: str | None,
    method: str,
    username: str,
    password: str,
    realm: str,
    nonces: set[str],
) -> bool:
    """Whether ``header`` is a valid Digest answer for ``username``/``password`` to one of
    the ``nonces`` this server handed out."""
    if not header:
        return False
    params = parse_authorization(header)
    if not params:
        return False
    if params.get("username") != username or params.get("nonce") not in nonces:
        return False
    if params.get("realm") != realm:
        return False
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{params.get('uri', '')}")
    if params.get("qop"):
        expected = _md5(
            f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:"
            f"{params['qop']}:{ha2}"
        )
    else:
        expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
    return secrets.compare_digest(expected, params.get("response", ""))
