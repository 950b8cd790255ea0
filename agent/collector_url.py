"""A connection error from the collector's address, said in a plain sentence: ``https://``
against a collector that serves plain HTTP on that port, or the reverse. The address
itself is checked before anything is sent (:mod:`protocol.collector_url`).
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import aiohttp


def explain_connection_error(url: str, exc: BaseException) -> str | None:
    """A plain sentence for a scheme that does not match what the collector serves."""
    parts = urlsplit(url)
    if parts.scheme == "https" and isinstance(
        exc, (aiohttp.ClientSSLError, aiohttp.ClientConnectorSSLError, ssl.SSLError)
    ):
        plain = url.replace("https://", "http://", 1)
        return (
            f"the TLS handshake with {parts.netloc} failed ({exc}); if the collector serves "
            f"plain HTTP on that port use {plain}, otherwise check its certificate"
        )
    if parts.scheme == "http" and isinstance(
        exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)
    ):
        secure = url.replace("http://", "https://", 1)
        return f"{parts.netloc} did not answer plain HTTP ({exc}); if it serves TLS use {secure}"
    return None
