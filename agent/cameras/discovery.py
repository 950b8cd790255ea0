"""WS-Discovery: find ONVIF devices that answer a Probe, without credentials.

A Probe goes to the multicast group 239.255.255.250:3702 from each configured interface,
and to each configured unicast target (``host:port``); every ProbeMatch within the timeout
is collected. Nothing else is sent to what answers: discovered cameras are reported, never
probed with credentials.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

MULTICAST = ("239.255.255.250", 3702)
MAX_FOUND = 1024
"""At most this many answering devices are kept per round (a report holds 1024 cameras)."""
_WSD_NS = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Discovered:
    address: str
    port: int
    xaddr: str
    scopes: tuple[str, ...] = ()

    def scope(self, kind: str) -> str:
        prefix = f"onvif://www.onvif.org/{kind}/"
        for scope in self.scopes:
            if scope.startswith(prefix):
                return scope[len(prefix) :].replace("_", " ")
        return ""


def probe_message(message_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        f'xmlns:d="{_WSD_NS}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
        "<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"
        f"<a:MessageID>{message_id}</a:MessageID>"
        "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>"
        "<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>"
        "</s:Envelope>"
    ).encode()


def parse_matches(data: bytes) -> list[Discovered]:
    from lxml import etree  # only when discovery runs

    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return []
    out: list[Discovered] = []
    for match in root.iter(f"{{{_WSD_NS}}}ProbeMatch"):
        xaddrs = (match.findtext(f"{{{_WSD_NS}}}XAddrs") or "").split()
        scopes = tuple((match.findtext(f"{{{_WSD_NS}}}Scopes") or "").split())
        for xaddr in xaddrs:
            parts = urlsplit(xaddr)
            if parts.scheme in ("http", "https") and parts.hostname:
                port = parts.port or (443 if parts.scheme == "https" else 80)
                out.append(Discovered(parts.hostname, port, xaddr, scopes))
                break
    return out


def interface_addresses(names: tuple[str, ...] | list[str]) -> list[str]:
    """IPv4 addresses of the named interfaces (an IPv4 address is taken as it is)."""
    import psutil

    addrs = psutil.net_if_addrs()
    out: list[str] = []
    for name in names:
        if name in addrs:
            out += [a.address for a in addrs[name] if a.family == socket.AF_INET]
        else:
            try:
                socket.inet_aton(name)
                out.append(name)
            except OSError:
                log.warning("discovery interface %s not found", name)
    return out


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, found: dict[tuple[str, int], Discovered]) -> None:
        self.found = found

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        for device in parse_matches(data[:65536]):
            if len(self.found) >= MAX_FOUND:
                return
            self.found.setdefault((device.address, device.port), device)

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery: %s", exc)


async def discover(
    interfaces: tuple[str, ...] | list[str],
    targets: tuple[tuple[str, int], ...] | list[tuple[str, int]],
    timeout_s: float,
) -> list[Discovered]:
    """Send Probes and collect the answers for ``timeout_s`` seconds."""
    loop = asyncio.get_running_loop()
    found: dict[tuple[str, int], Discovered] = {}
    transports: list[asyncio.DatagramTransport] = []
    message = probe_message(f"urn:uuid:{uuid.uuid4()}")
    try:
        for address in interface_addresses(interfaces):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
            sock.bind((address, 0))
            transport, _ = await loop.create_datagram_endpoint(lambda: _Collector(found), sock=sock)
            transports.append(transport)
            transport.sendto(message, MULTICAST)
        if targets:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Collector(found), local_addr=("0.0.0.0", 0)
            )
            transports.append(transport)
            for target in targets:
                transport.sendto(message, target)
        await asyncio.sleep(timeout_s)
    finally:
        for transport in transports:
            transport.close()
    return list(found.values())
