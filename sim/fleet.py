"""Simulated ONVIF cameras served over real sockets on 127.0.0.1.

Every camera has its own HTTP port (ONVIF device + media services, snapshot) and its own
RTSP port (OPTIONS/DESCRIBE). One aiohttp application serves all HTTP ports and finds the
camera by the local port a request arrived on. Faults change what a port does::

    async with SimulatedFleet(20, faults="3:blackhole,4:clock=3600") as fleet:
        fleet.cameras[0].device_url   # http://127.0.0.1:PORT/onvif/device_service
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from lxml import etree

from sim import digest, rtsp, soap
from sim.discovery import DiscoveryResponder
from sim.faults import FaultPlan, Faults, parse_faults
from sim.identity import Identity, identity_for
from sim.wsse import NonceCache, check_username_token

DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "vigil-sim"
AUTH_CLOCK_TOLERANCE_S = 10.0
"""How far a UsernameToken's Created may be from the camera's clock (cameras use 5-300 s)."""

_PRE_AUTH = frozenset({"GetSystemDateAndTime"})
"""Operations a camera answers without credentials (ONVIF Core, access class PRE_AUTH)."""


@dataclass(eq=False)
class SimulatedCamera:
    index: int
    identity: Identity
    faults: Faults
    host: str
    port: int
    rtsp_port: int
    username: str
    password: str
    """The credentials the simulator advertises (what an installer would configure)."""
    serial: str = ""
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    """Operations received (SOAP operation names, ``RTSP DESCRIBE``, ``GET snapshot``)."""
    nonces: NonceCache = field(default_factory=NonceCache)
    http_nonces: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.serial:
            self.serial = self.identity.serial

    @property
    def real_password(self) -> str:
        """The password the camera accepts (differs with the ``wrong_password`` fault)."""
        return self.password + "-changed" if self.faults.wrong_password else self.password

    @property
    def realm(self) -> str:
        return f"{self.identity.manufacturer} camera {self.index}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def device_url(self) -> str:
        return f"{self.base_url}/onvif/device_service"

    url = device_url

    @property
    def onvif_url(self) -> str:
        """``onvif://USER:PASS@HOST:PORT``, what ``vigil-agent probe`` takes."""
        return f"onvif://{self.username}:{self.password}@{self.host}:{self.port}"

    @property
    def rtsp_base(self) -> str:
        return f"rtsp://{self.host}:{self.rtsp_port}/stream"

    def now(self) -> dt.datetime:
        """The camera's own clock (with the ``clock`` fault's offset)."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.faults.clock_offset_s)

    def replace(self, serial: str) -> None:
        """Swap the device for another unit of the same model (a new serial number)."""
        self.serial = serial

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "host": self.host,
            "port": self.port,
            "rtsp_port": self.rtsp_port,
            "address": self.address,
            "device_url": self.device_url,
            "onvif_url": self.onvif_url,
            "username": self.username,
            "password": self.password,
            "manufacturer": self.identity.manufacturer,
            "model": self.identity.model,
            "firmware": self.identity.firmware,
            "serial": self.serial,
            "faults": self.faults.names(),
        }


_CAMERA_KEY = web.AppKey("cameras_by_port", dict)


class SimulatedFleet:
    """``count`` simulated cameras; ``async with`` starts and stops them.

    ``faults`` is a ``--faults`` specification string or ``{index: "mode[=value]"}``.
    ``base_port`` puts camera ``i``'s HTTP on ``base_port + i`` and RTSP on
    ``base_port + count + i``; without it every port is a free one the OS picks.
    ``discovery`` starts a WS-Discovery responder on ``discovery_port`` (0 = any free port).
    """

    def __init__(
        self,
        count: int,
        faults: str | dict[int, str | list[str]] | FaultPlan | None = None,
        *,
        base_port: int | None = None,
        host: str = "127.0.0.1",
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        discovery: bool = False,
        discovery_port: int = 0,
        auth_tolerance_s: float = AUTH_CLOCK_TOLERANCE_S,
    ) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        plan = faults if isinstance(faults, FaultPlan) else parse_faults(faults, count)
        self.count = count
        self.host = host
        self.base_port = base_port
        self.auth_tolerance_s = auth_tolerance_s
        self._plan = plan
        self._username = username
        self._password = password
        self._want_discovery = discovery
        self.discovery_port: int | None = discovery_port if discovery else None
        self.cameras: list[SimulatedCamera] = []
        self._runner: web.AppRunner | None = None
        self._servers: list[asyncio.Server] = []
        self._idle_sockets: list[socket.socket] = []
        self._held: set[asyncio.StreamWriter] = set()
        self._discovery: asyncio.DatagramTransport | None = None
        self.discovery_responder: DiscoveryResponder | None = None

    async def __aenter__(self) -> SimulatedFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        return sock

    async def start(self) -> None:
        app = web.Application(client_max_size=256 * 1024)
        by_port: dict[int, SimulatedCamera] = {}
        app[_CAMERA_KEY] = by_port
        app.router.add_post("/onvif/{service}", self._soap)
        app.router.add_get("/onvif/snapshot", self._snapshot)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        try:
            for i in range(self.count):
                faults = self._plan.for_index(i)
                if self.base_port is not None:
                    http_sock = self._bind(self.base_port + i)
                    rtsp_sock = self._bind(self.base_port + self.count + i)
                else:
                    http_sock, rtsp_sock = self._bind(0), self._bind(0)
                camera = SimulatedCamera(
                    index=i,
                    identity=identity_for(i),
                    faults=faults,
                    host=self.host,
                    port=http_sock.getsockname()[1],
                    rtsp_port=rtsp_sock.getsockname()[1],
                    username=self._username,
                    password=self._password,
                )
                self.cameras.append(camera)
                await self._serve(camera, http_sock, rtsp_sock, by_port)
            if self._want_discovery:
                loop = asyncio.get_running_loop()
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: DiscoveryResponder(lambda: self.cameras),
                    local_addr=(self.host, self.discovery_port or 0),
                )
                self._discovery = transport
                self.discovery_responder = protocol
                self.discovery_port = transport.get_extra_info("sockname")[1]
        except BaseException:
            await self.stop()
            raise

    async def _serve(
        self,
        camera: SimulatedCamera,
        http_sock: socket.socket,
        rtsp_sock: socket.socket,
        by_port: dict[int, SimulatedCamera],
    ) -> None:
        if camera.faults.offline:
            # Bound but not listening: the ports stay ours and a connect is refused.
            self._idle_sockets += [http_sock, rtsp_sock]
            return
        if camera.faults.blackhole:
            for sock in (http_sock, rtsp_sock):
                sock.listen(128)
                self._servers.append(await asyncio.start_server(self._hold, sock=sock))
            return
        by_port[camera.port] = camera
        assert self._runner is not None
        site = web.SockSite(self._runner, http_sock, backlog=512)
        await site.start()
        rtsp_sock.listen(128)
        self._servers.append(await asyncio.start_server(rtsp.make_handler(camera), sock=rtsp_sock))

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Blackhole: read and discard whatever comes, never answer."""
        self._held.add(writer)
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self._held.discard(writer)
            writer.close()

    async def stop(self) -> None:
        if self._discovery is not None:
            self._discovery.close()
            self._discovery = None
        for writer in list(self._held):
            writer.close()
        for server in self._servers:
            server.close()
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 1)
            except TimeoutError:
                pass
        self._servers.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for sock in self._idle_sockets:
            sock.close()
        self._idle_sockets.clear()

    # --- HTTP handlers -------------------------------------------------------------------

    @staticmethod
    def _camera(request: web.Request) -> SimulatedCamera:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        camera = request.app[_CAMERA_KEY].get(sockname[1]) if sockname else None
        if camera is None:
            raise web.HTTPNotFound()
        return camera

    async def _soap(self, request: web.Request) -> web.Response:
        camera = self._camera(request)
        body = await request.read()
        if camera.faults.slow_s:
            await asyncio.sleep(camera.faults.slow_s)
        service = request.match_info["service"]
        status, payload = self._answer(camera, service, body)
        return web.Response(
            status=status, body=payload, content_type="application/soap+xml", charset="utf-8"
        )

    def _answer(self, camera: SimulatedCamera, service: str, body: bytes) -> tuple[int, bytes]:
        if camera.faults.garbage:
            camera.requests["garbage"] += 1
            return 200, soap.GARBAGE
        try:
            parser = etree.XMLParser(resolve_entities=False, no_network=True)
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError:
            return 400, soap.fault("ter:WellFormed", "request is not well-formed XML")
        operation_el = None
        for el in root.iter(f"{{{soap.SOAP_NS}}}Body"):
            operation_el = next((c for c in el if isinstance(c.tag, str)), None)
            break
        if operation_el is None:
            return 400, soap.fault("ter:MissingAttr", "no operation in Body")
        operation = etree.QName(operation_el).localname
        camera.requests[operation] += 1
        if operation not in _PRE_AUTH:
            why = check_username_token(
                root,
                camera.username,
                camera.real_password,
                camera.now(),
                self.auth_tolerance_s,
                camera.nonces,
            )
            if why is not None:
                return 400, soap.not_authorized(why)
        if service == "device_service":
            return self._device(camera, operation)
        if service == "media_service" and not camera.faults.no_media:
            return self._media(camera, operation, operation_el)
        return 400, soap.action_not_supported(operation)

    def _device(self, camera: SimulatedCamera, operation: str) -> tuple[int, bytes]:
        media = not camera.faults.no_media
        if operation == "GetSystemDateAndTime":
            return 200, soap.system_date_and_time(camera.now())
        if operation == "GetDeviceInformation":
            return 200, soap.device_information(camera.identity, camera.serial)
        if operation == "GetServices" and not camera.faults.legacy:
            return 200, soap.services(camera.base_url, media)
        if operation == "GetCapabilities":
            return 200, soap.capabilities(camera.base_url, media)
        return 400, soap.action_not_supported(operation)

    def _media(self, camera: SimulatedCamera, operation: str, op_el: Any) -> tuple[int, bytes]:
        tokens = {token for token, _, _ in soap.PROFILES}
        if operation == "GetProfiles":
            return 200, soap.profiles(camera.identity)
        if operation in ("GetStreamUri", "GetSnapshotUri"):
            token = soap.profile_token(op_el)
            if token not in tokens:
                return 400, soap.fault("ter:NoProfile", f"no profile {token!r}")
            if operation == "GetStreamUri":
                return 200, soap.media_uri(operation, f"{camera.rtsp_base}/{token}")
            return 200, soap.media_uri(
                operation, f"{camera.base_url}/onvif/snapshot?profile={token}"
            )
        return 400, soap.action_not_supported(operation)

    async def _snapshot(self, request: web.Request) -> web.Response:
        camera = self._camera(request)
        camera.requests["GET snapshot"] += 1
        if camera.faults.slow_s:
            await asyncio.sleep(camera.faults.slow_s)
        if not digest.verify(
            request.headers.get("Authorization"),
            "GET",
            camera.username,
            camera.real_password,
            camera.realm,
            camera.http_nonces,
        ):
            nonce, value = digest.challenge(camera.realm, qop=True)
            if len(camera.http_nonces) > 256:
                camera.http_nonces.clear()
            camera.http_nonces.add(nonce)
            return web.Response(status=401, headers={"WWW-Authenticate": value})
        return web.Response(body=soap.JPEG, content_type="image/jpeg")
