"""Where the collector may send: public addresses only, unless the operator allows more.

A partner configures the webhook URL, the SMTP host and the Apprise URL; without this
check a partner could make the collector call its own network (a cloud metadata service,
an admin port on 127.0.0.1) and read the answer in the delivery log. So every address a
name resolves to must be a global unicast address; a name that resolves to anything else
is refused. Webhooks are checked in the resolver aiohttp connects with (no second
look-up that DNS could answer differently); SMTP and Apprise hosts are checked just
before sending. ``[notify] allow_private_targets = true`` lifts the check, for a
collector whose receivers live on its own network (and for the demo and the tests).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class TargetRefused(OSError):
    """The target resolves to an address the collector does not send to."""


def public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


def literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def check_host(host: str, port: int) -> None:
    """Resolve ``host`` (blocking) and refuse it unless every address is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc.strerror}") from None
    bad = sorted({str(i[4][0]) for i in infos if not public(str(i[4][0]))})
    if bad or not infos:
        raise TargetRefused(f"{host} resolves to a private address ({', '.join(bad)}); refused")


def check_url(url: str) -> None:
    """For a URL with a literal address (which skips the resolver)."""
    host = urlsplit(url).hostname or ""
    if literal(host) and not public(host):
        raise TargetRefused(f"{host} is a private address; refused")


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, keeping public addresses only."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if public(r["host"])]
        if not kept:
            raise TargetRefused(f"{host} resolves to a private address; refused")
        return kept

    async def close(self) -> None:
        await self._inner.close()


APPRISE_HOST_SCHEMAS = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
"""Apprise schemas that post to the host in the URL (the others call their service)."""


def apprise_host(url: str) -> tuple[str, int] | None:
    parts: Any = urlsplit(url)
    if parts.scheme.lower() not in APPRISE_HOST_SCHEMAS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname, port or (443 if parts.scheme.endswith("s") else 80)
