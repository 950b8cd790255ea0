"""A forward HTTP proxy on 127.0.0.1, as a site's proxy between an agent and its collector:
``CONNECT host:port`` opens a tunnel (what a client does for an ``https://`` target),
an absolute-form request (``GET http://host:port/...``) is relayed as it is (aiohttp's
server accepts that form). It records the request line and the target of each connection,
so a test sees which links went through it and how."""

from __future__ import annotations

import socket
import threading


class RelayProxy:
    """The proxy at ``url``; ``request_lines`` and ``targets`` in the order asked."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.request_lines: list[str] = []
        """The first line of each connection's request (``CONNECT 127.0.0.1:8443 HTTP/1.1``)."""
        self.targets: list[str] = []
        """``host:port`` each connection was relayed to."""
        self.source_ports: list[int] = []
        """The local port of each connection it opened to a target: where the target sees
        the proxy's connections come from."""
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop = True
        self.server.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0]
            method, target = line.split(b" ", 2)[:2]
            if method == b"CONNECT":
                host, _, port = target.decode().rpartition(":")
                rest = head.split(b"\r\n\r\n", 1)[1]
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                hostport = target.decode().split("/")[2]
                host, _, port = hostport.rpartition(":")
                rest = head
            with self._lock:
                self.request_lines.append(line.decode())
                self.targets.append(f"{host}:{port}")
            with socket.create_connection((host, int(port)), timeout=30) as upstream:
                with self._lock:
                    self.source_ports.append(upstream.getsockname()[1])
                if rest:
                    upstream.sendall(rest)
                self._relay(conn, upstream)

    @staticmethod
    def _relay(client: socket.socket, upstream: socket.socket) -> None:
        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        t.start()
        pump(client, upstream)
        t.join(60)
