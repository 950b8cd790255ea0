"""onvif-zeep-async, tamed for a daemon that probes hundreds of cameras.

What the library does by default, and what this module does instead:

* ``import onvif`` calls ``logging.basicConfig(level=INFO)``: importing it here puts the
  root logger's handlers and level back as they were, so the agent's logging is its own.
* ``ONVIFCamera(...)`` clears ``http_proxy``/``https_proxy`` from the whole process and
  opens two aiohttp sessions per service with 90 s timeouts: the agent never creates an
  ``ONVIFCamera``. It builds zeep clients itself on the library's parsed WSDL documents,
  over one shared aiohttp session whose timeouts the prober sets (the proxy variables are
  left alone, and ``trust_env`` is off so camera traffic never goes through a proxy).
* Every ``ONVIFCamera`` parses its WSDLs again when created concurrently on a cold cache
  (256 cameras: 58 s, 1.26 GB): the documents are parsed once per process, in a worker
  thread, behind a lock, and shared by every camera.
* WSDLs are read from the package's own ``wsdl/`` folder through the library's
  ``AsyncSafeTransport``, which refuses any URL that is not a local file: nothing is
  fetched over the network.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from types import ModuleType
from typing import Any

_import_lock = threading.Lock()
_client_module: ModuleType | None = None


def onvif_client() -> ModuleType:
    """``onvif.client``, imported without its ``logging.basicConfig`` side effect."""
    global _client_module
    if _client_module is not None:
        return _client_module
    with _import_lock:
        if _client_module is None:
            root = logging.getLogger()
            handlers, level = list(root.handlers), root.level
            try:
                import onvif.client as client
            finally:
                for handler in list(root.handlers):
                    if handler not in handlers:
                        root.removeHandler(handler)
                root.setLevel(level)
            # zeep logs a traceback for every value a camera gets wrong; the probe reports
            # what matters once per camera, so a misbehaving camera cannot flood the log.
            logging.getLogger("zeep").setLevel(logging.CRITICAL)
            _client_module = client
    return _client_module


DEVICE = "devicemgmt"
MEDIA = "media"
_BINDINGS = {
    DEVICE: ("devicemgmt.wsdl", "{http://www.onvif.org/ver10/device/wsdl}DeviceBinding"),
    MEDIA: ("media.wsdl", "{http://www.onvif.org/ver10/media/wsdl}MediaBinding"),
}
MEDIA_NAMESPACE = "http://www.onvif.org/ver10/media/wsdl"

_parse_lock = threading.Lock()
_documents: dict[str, Any] = {}


def _load_document(service: str) -> Any:
    """Parse one bundled WSDL (blocking; runs in a worker thread, once per process)."""
    with _parse_lock:
        if service in _documents:
            return _documents[service]
        client = onvif_client()
        from onvif.types import FastDateTime, ForgivingTime

        url = f"{client._WSDL_PATH}/{_BINDINGS[service][0]}"
        cached = client._DOCUMENT_CACHE.get(url)
        if cached is None:
            # The same steps as the library's own _cached_document(), which has no lock.
            document = client.DocumentWithDeferredLoad(
                url, client.ASYNC_TRANSPORT, settings=client.DEFAULT_SETTINGS
            )
            schema = document.types.documents.get_by_namespace(
                "http://www.w3.org/2001/XMLSchema", False
            )[0]
            schema.register_type(FastDateTime._default_qname, FastDateTime(is_global=True))
            schema.register_type(ForgivingTime._default_qname, ForgivingTime(is_global=True))
            document.types.add_documents([None], url)
            document.original_load(url)
            client._DOCUMENT_CACHE[url] = cached = document
        _documents[service] = cached
        return cached


async def warm_documents() -> None:
    """Parse the device and media WSDLs once (off the event loop); later calls are free."""
    for service in _BINDINGS:
        if service not in _documents:
            await asyncio.to_thread(_load_document, service)


class OnvifClients:
    """The zeep service proxies of one camera, on a transport shared by the agent."""

    def __init__(self, transport: Any, username: str, password: str) -> None:
        client = onvif_client()
        self._client = client
        self._transport = transport
        self.wsse = client.UsernameDigestTokenDtDiff(
            username, password, dt_diff=None, use_digest=True
        )
        self._proxies: dict[tuple[str, str, bool], Any] = {}

    def service(self, service: str, xaddr: str, *, auth: bool = True) -> Any:
        """A service proxy for ``service`` at ``xaddr``; ``auth=False`` sends no token."""
        key = (service, xaddr, auth)
        proxy = self._proxies.get(key)
        if proxy is None:
            document = _documents.get(service)
            if document is None:
                raise RuntimeError("warm_documents() must run before the first probe")
            zeep_client = self._client.ZeepAsyncClient(
                wsdl=document,
                wsse=self.wsse if auth else None,
                transport=self._transport,
                settings=self._client.DEFAULT_SETTINGS,
                plugins=[self._client.WsAddressingIfMissingPlugin()],
            )
            proxy = zeep_client.create_service(_BINDINGS[service][1], xaddr)
            self._proxies[key] = proxy
        return proxy


_transport_class: type | None = None


def make_transport(session: Any) -> Any:
    """A zeep transport on ``session``: the library's (which retries once when a kept-alive
    connection was closed by the camera before the request went out), raising zeep's
    ``TransportError`` on HTTP 401/403 instead of letting zeep read the login page as an
    "unknown fault", so an HTTP authentication failure is reported as one."""
    global _transport_class
    if _transport_class is None:
        import zeep.exceptions

        base = onvif_client().AsyncTransportProtocolErrorHandler

        class _Transport(base):  # type: ignore[misc, valid-type]
            async def post_xml(self, address: str, envelope: Any, headers: dict) -> Any:
                response = await super().post_xml(address, envelope, headers)
                if response.status_code in (401, 403):
                    raise zeep.exceptions.TransportError(
                        f"HTTP {response.status_code}",
                        status_code=response.status_code,
                        content=response.content[:1024],
                    )
                return response

        _transport_class = _Transport
    return _transport_class(session=session, verify_ssl=False)
