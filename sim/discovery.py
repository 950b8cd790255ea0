"""A WS-Discovery responder for the simulated fleet, on a UDP port of 127.0.0.1.

Real cameras answer a multicast Probe to 239.255.255.250:3702; the simulator answers a
unicast Probe sent to its port (loopback only), one ProbeMatches message per camera, as
each real camera would answer for itself.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.fleet import SimulatedCamera

_MESSAGE_ID = re.compile(rb"MessageID[^>]*>\s*([^<\s]+)\s*<")


def probe_match(camera: SimulatedCamera, relates_to: str) -> bytes:
    ident = camera.identity
    scopes = " ".join(
        (
            "onvif://www.onvif.org/type/video_encoder",
            f"onvif://www.onvif.org/hardware/{ident.model.replace(' ', '_')}",
            f"onvif://www.onvif.org/name/{ident.manufacturer.replace(' ', '_')}",
            "onvif://www.onvif.org/location/sim",
        )
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header>'
        "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>"
        f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        "</s:Header><s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference>"
        f"<a:Address>urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, camera.identity.serial)}</a:Address>"
        "</a:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types>"
        f"<d:Scopes>{scopes}</d:Scopes><d:XAddrs>{camera.device_url}</d:XAddrs>"
        "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>"
        "</s:Body></s:Envelope>"
    ).encode()


class DiscoveryResponder(asyncio.DatagramProtocol):
    def __init__(self, cameras: Callable[[], Sequence[SimulatedCamera]]) -> None:
        self._cameras = cameras
        self.transport: asyncio.DatagramTransport | None = None
        self.probes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if b"Probe" not in data or b"ProbeMatches" in data or self.transport is None:
            return
        self.probes += 1
        found = _MESSAGE_ID.search(data)
        relates_to = found.group(1).decode("ascii", "replace") if found else ""
        for camera in self._cameras():
            if camera.faults.offline or camera.faults.blackhole:
                continue
            self.transport.sendto(probe_match(camera, relates_to), addr)
