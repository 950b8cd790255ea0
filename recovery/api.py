"""The partner API, as ``vigil-backup`` uses it: list, envelope, object, public key.

Standard library HTTP (``urllib``): the tool must run on a fresh machine with nothing but
the key file, the API key and the collector's URL. Objects are streamed, never held whole.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO

from protocol import routes
from protocol.collector_url import CollectorUrlError, check_collector_url

TIMEOUT_S = 60.0


class ApiError(Exception):
    """The collector refused or could not be reached; the message says which."""


class PartnerApi:
    def __init__(self, base_url: str, api_key: str) -> None:
        if not base_url:
            raise ApiError("no collector URL: pass --collector URL or set VIGIL_COLLECTOR")
        if not api_key:
            raise ApiError("no API key: pass --api-key KEY or set VIGIL_API_KEY")
        try:
            self.base = check_collector_url(base_url)
        except CollectorUrlError as exc:
            raise ApiError(str(exc)) from None
        self._auth = f"Bearer {api_key}"

    def _open(self, path: str) -> Any:
        req = urllib.request.Request(
            self.base + path, headers={"Authorization": self._auth, "Accept": "*/*"}
        )
        try:
            return urllib.request.urlopen(req, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            detail = ""
            try:
                body = json.loads(exc.read() or b"{}")
                detail = body.get("message") or body.get("error") or ""
            except (ValueError, OSError, AttributeError):
                pass
            if exc.code == 404:
                raise ApiError(f"not found: {path} {detail}".rstrip()) from None
            if exc.code in (401, 403):
                raise ApiError(f"the collector refused the API key ({exc.code}) {detail}") from None
            raise ApiError(f"{path}: HTTP {exc.code} {detail}".rstrip()) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(f"cannot reach the collector at {self.base}: {exc}") from None

    def _get_bytes(self, path: str) -> bytes:
        with self._open(path) as resp:
            return resp.read()

    def _get_json(self, path: str) -> Any:
        try:
            return json.loads(self._get_bytes(path))
        except ValueError:
            raise ApiError(f"{path}: the collector answered with invalid JSON") from None

    @staticmethod
    def _q(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def backups(self, server: str) -> list[dict[str, Any]]:
        data = self._get_json(routes.SERVER_BACKUPS.format(server_id=self._q(server)))
        return list(data.get("backups", []))

    def envelope(self, server: str, backup_id: str) -> bytes:
        return self._get_bytes(
            routes.SERVER_BACKUP_ENVELOPE.format(
                server_id=self._q(server), backup_id=self._q(backup_id)
            )
        )

    def open_object(self, server: str, backup_id: str) -> BinaryIO:
        """The age file, as a stream (close it when done)."""
        path = routes.SERVER_BACKUP_OBJECT.format(
            server_id=self._q(server), backup_id=self._q(backup_id)
        )
        return self._open(path)

    def public_key(self, server: str) -> bytes:
        data = self._get_json(routes.SERVER_PUBLIC_KEY.format(server_id=self._q(server)))
        try:
            raw = base64.b64decode(data["public_key"], validate=True)
        except (KeyError, ValueError, TypeError):
            raise ApiError("the collector returned no valid public key for this server") from None
        if len(raw) != 32:
            raise ApiError("the server's public key is not a 32-byte Ed25519 key")
        return raw
