"""Typed application state (aiohttp ``web.AppKey``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from collector.config import CollectorConfig
    from collector.http.metrics import Metrics
    from collector.http.ratelimit import AuthLimits
    from collector.http.replay import NonceStore
    from collector.http.session_keys import SessionSealer
    from collector.storage import Database

DB: web.AppKey[Database] = web.AppKey("db")
CONFIG: web.AppKey[CollectorConfig] = web.AppKey("config")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
NONCES: web.AppKey[NonceStore] = web.AppKey("nonces")
LIMITS: web.AppKey[AuthLimits] = web.AppKey("auth_limits")
SEALER: web.AppKey[SessionSealer] = web.AppKey("session_sealer")
