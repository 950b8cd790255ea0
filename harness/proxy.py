"""A TCP proxy on 127.0.0.1 in front of a collector that breaks connections as a failing
network does: it cuts a connection after a number of request bytes (in the middle of a
chunk), or holds it (a peer that stops reading). Which connection and where is chosen by a
byte string its request carries (``b"PUT "``, ``b"/complete "``). It counts what it
forwarded, so a test can see what crossed the wire."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Rule:
    match: bytes
    skip: int
    after: int
    times: int
    hold: bool


@dataclass
class CuttingProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``, both ways."""

    target_port: int
    forwarded: int = 0
    """Request bytes (client to collector) forwarded so far, over every connection."""
    cuts: int = 0
    """Connections cut (or held) by a rule so far."""
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: socket.socket | None = None
    _open: list[socket.socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CuttingProxy:
        self._server = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def cut(self, match: bytes = b"", *, skip: int = 0, after: int = 0, times: int = 1) -> None:
        """Cut the connection carrying the next request data holding ``match`` (any data
        for ``b""``), ``skip`` such requests from now left alone first, after forwarding
        ``after`` bytes from where ``match`` starts (0: none of it); ``times`` such
        requests in a row are cut."""
        with self._lock:
            self._rules.append(_Rule(match, skip, after, times, hold=False))

    def hold(self, match: bytes, *, skip: int = 0) -> None:
        """As ``cut`` with ``after=0``, but the connection is held open (nothing of the
        request forwarded) until ``release`` cuts it: a peer gone while its bytes were on
        the way."""
        self._released.clear()
        with self._lock:
            self._rules.append(_Rule(match, skip, 0, 1, hold=True))

    def release(self) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if not r.hold]
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.close()
        for s in list(self._open):
            _close(s)

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                if self._server.fileno() == -1:
                    return
                continue
            self._open += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def _answers(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        _close(src)
        _close(dst)

    def _requests(self, src: socket.socket, dst: socket.socket) -> None:
        budget: int | None = None  # bytes still forwarded before this connection is cut
        try:
            while data := src.recv(65536):
                if budget is None:
                    budget, hold = self._triggered(data)
                    if hold:
                        self._released.wait()
                if budget is not None:
                    data = data[:budget]
                    budget -= len(data)
                self._count(len(data))
                if data:
                    dst.sendall(data)
                if budget == 0:
                    break
        except OSError:
            pass
        _close(src)
        _close(dst)

    def _count(self, n: int) -> None:
        with self._lock:
            self.forwarded += n

    def _triggered(self, data: bytes) -> tuple[int | None, bool]:
        """(bytes of ``data`` and after to forward before the cut, or None; hold it)."""
        with self._lock:
            for rule in self._rules:
                at = data.find(rule.match)
                if at < 0:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    return None, False
                rule.times -= 1
                if rule.times <= 0:
                    self._rules.remove(rule)
                self.cuts += 1
                return at + rule.after, rule.hold
        return None, False


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
