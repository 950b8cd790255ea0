"""Local receivers for notification tests: a Standard Webhooks endpoint that checks every
signature with the reference library, and an SMTP server (aiosmtpd), on 127.0.0.1."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from harness.net import free_port


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    status: int
    verified: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers ``fail_first`` requests with 500, then 200 (or ``status`` while set)."""

    secrets: list[str] = field(default_factory=list)
    fail_first: int = 0
    down: bool = False
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = receiver.verify(body, headers)
                with receiver.lock:
                    failing = receiver.down or receiver.fail_first > 0
                    if receiver.fail_first > 0:
                        receiver.fail_first -= 1
                    status = 500 if failing or not verified else 200
                    receiver.hits.append(Hit(headers, body, status, verified))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, *args: object) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return not self.secrets

    def delivered(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailCatcher:
    """An SMTP server on 127.0.0.1 that keeps every message it receives."""

    def __init__(
        self,
        auth: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
    ) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.messages: list[EmailMessage] = []
        catcher = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = message_from_bytes(envelope.content, policy=policy.default)
                catcher.messages.append(msg)  # type: ignore[arg-type]
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            ok = (
                auth is not None
                and isinstance(data, LoginPassword)
                and (data.login.decode(), data.password.decode()) == auth
            )
            return AuthResult(success=ok)

        kwargs: dict[str, Any] = {}
        if auth is not None:
            kwargs = {
                "authenticator": authenticator,
                "auth_required": True,
                # aiosmtpd does not count implicit TLS as TLS here; the link is TLS anyway.
                "auth_require_tls": tls is not None and not implicit_tls,
            }
        if tls is not None and implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
