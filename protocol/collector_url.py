"""The collector's address as a person types it, checked before anything is sent.

An installer copies the collector's URL from an e-mail or a wiki. The usual slips are a
missing scheme (``vigil.example.net:8700``), the API path copied along
(``https://vigil.example.net/api/v1``) and ``https://`` against a collector that serves
plain HTTP on that port (or the reverse). Each gets one line that names the slip and the
URL to use, instead of a connection error from three layers down. The agent's ``enroll``
and the partner's ``vigil-backup`` check it the same way.
"""

from __future__ import annotations

from urllib.parse import urlsplit


class CollectorUrlError(ValueError):
    """The collector URL cannot be right; the message says why and what to type."""


def check_collector_url(url: str) -> str:
    """``url`` as it is kept (no trailing slash); raises :class:`CollectorUrlError`."""
    text = url.strip()
    if "://" not in text:
        raise CollectorUrlError(
            f"the collector URL {url!r} has no scheme; use https://{text.rstrip('/')} "
            f"(or http://{text.rstrip('/')} for a collector without TLS)"
        )
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise CollectorUrlError(
            f"the collector URL must start with https:// or http://, not {parts.scheme}://"
        )
    if not parts.hostname:
        raise CollectorUrlError(f"the collector URL {url!r} names no host")
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when asked)
    except ValueError:
        raise CollectorUrlError(f"the port in {url!r} must be a number 1-65535") from None
    base = f"{parts.scheme.lower()}://{parts.netloc}"
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise CollectorUrlError(
            f"the collector URL is the collector's address alone, without a path: "
            f"use {base} (not {text})"
        )
    return base
