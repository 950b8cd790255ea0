"""The demo's notification receivers: a local webhook receiver and a mail catcher.

Both listen on 127.0.0.1 inside the demo process. The receiver writes each webhook it gets
(headers and JSON body) as one line to ``webhooks.jsonl``; the catcher (aiosmtpd, a
development dependency, skipped when absent) writes each mail to ``mail/NNNN.eml``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Receivers:
    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.webhooks = out / "webhooks.jsonl"
        self.mail_dir = out / "mail"
        lock = threading.Lock()
        sink = self.webhooks

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                keep = {k: v for k, v in self.headers.items() if k.lower().startswith("webhook-")}
                try:
                    doc: Any = json.loads(body)
                except ValueError:
                    doc = body.decode(errors="replace")
                with lock, sink.open("a") as f:
                    f.write(json.dumps({"headers": keep, "body": doc}) + "\n")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.webhook_url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        self.smtp_port: int | None = None
        self._smtp: Any = None
        self._start_mail()

    def _start_mail(self) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            return
        self.mail_dir.mkdir(exist_ok=True)
        mail_dir = self.mail_dir

        class Catch:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                n = len(list(mail_dir.glob("*.eml"))) + 1
                (mail_dir / f"{n:04d}.eml").write_bytes(envelope.content)
                return "250 OK"

        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._smtp = Controller(Catch(), hostname="127.0.0.1", port=port)
        self._smtp.start()
        self.smtp_port = port

    def close(self) -> None:
        self.http.shutdown()
        if self._smtp is not None:
            self._smtp.stop()
