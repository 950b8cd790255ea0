"""Route paths of the collector's own interface: the partner API, the pages and the
operational endpoints. Paths that the agent or the partner's ``vigil-backup`` tool also
spell are in :mod:`protocol.routes`; a feature registers its routes with these names, and
the OpenAPI document lists them as registered (:mod:`collector.http.openapi`).

A path with ``{name}`` parts is an aiohttp route pattern.
"""

from __future__ import annotations

# --- operational ---------------------------------------------------------------------

METRICS = "/metrics"
API_PREFIX = "/api/"
API_V1_PREFIX = "/api/v1/"
OPENAPI = "/api/v1/openapi.json"

# --- partner API: servers (collector.health.api) --------------------------------------

SERVERS = "/api/v1/servers"
SERVER = "/api/v1/servers/{server_id}"
SERVER_CAMERAS = "/api/v1/servers/{server_id}/cameras"
SERVER_CAMERA_EVENTS = "/api/v1/servers/{server_id}/camera-events"
SERVER_STORAGE_HISTORY = "/api/v1/servers/{server_id}/storage-history"

# --- partner API: backups (collector.backups.policy_routes) ---------------------------

BACKUP_POLICY = "/api/v1/backup-policy"

# --- partner API: accounts (collector.accounts.api) -----------------------------------

ME = "/api/v1/me"
USERS = "/api/v1/users"
USER_ACTION = "/api/v1/users/{user_id}/{action}"
API_KEYS = "/api/v1/api-keys"
API_KEY = "/api/v1/api-keys/{key_id}"
ENROLLMENT_TOKENS = "/api/v1/enrollment-tokens"
ENROLLMENT_TOKEN = "/api/v1/enrollment-tokens/{token_id}"

# --- partner API: notifications (collector.notify.api) --------------------------------

NOTIFY_CHANNELS = "/api/v1/notify/channels"
NOTIFY_CHANNEL = "/api/v1/notify/channels/{channel_id}"
NOTIFY_CHANNEL_ROTATE_SECRET = "/api/v1/notify/channels/{channel_id}/rotate-secret"
NOTIFY_CHANNEL_TEST = "/api/v1/notify/channels/{channel_id}/test"
NOTIFY_CHANNEL_DELIVERIES = "/api/v1/notify/channels/{channel_id}/deliveries"
NOTIFY_ROUTES = "/api/v1/notify/routes"
NOTIFY_ROUTE = "/api/v1/notify/routes/{route_id}"
NOTIFY_SILENCES = "/api/v1/notify/silences"
NOTIFY_SILENCE = "/api/v1/notify/silences/{silence_id}"
NOTIFY_SERVER_LABELS = "/api/v1/notify/servers/{server_id}/labels"
NOTIFY_EVENTS = "/api/v1/notify/events"

# --- partner API: contracts (collector.contracts.routes) -----------------------------

CONTRACTS = "/api/v1/contracts"
CONTRACTS_IMPORT = "/api/v1/contracts/import"
CONTRACT = "/api/v1/contracts/{contract_id}"
CONTRACT_FINDINGS = "/api/v1/contract-findings"
INCIDENTS = "/api/v1/incidents"
INCIDENT = "/api/v1/incidents/{incident_id}"
INCIDENT_ACTION = "/api/v1/incidents/{incident_id}/{action}"
INCIDENT_PRIORITIES = "/api/v1/incident-priorities"
MONTHLY_REPORT = "/api/v1/reports/monthly"
MONTHLY_REPORT_PDF = "/api/v1/reports/monthly.pdf"
SLA_DUE = "/api/v1/sla/due"
SERVER_SMA_QUOTE = "/api/v1/servers/{server_id}/sma-quote"
SERVER_SMA_UPGRADE = "/api/v1/servers/{server_id}/sma-upgrade"

# --- pages (collector.http.pages, page_fleet, page_contracts) -------------------------

LOGIN = "/login"
LOGOUT = "/logout"
STATIC = "/static/{name}"
FLEET_PAGE = "/"
SERVER_PAGE = "/servers/{server_id}"
CONTRACTS_PAGE = "/contracts"
CONTRACTS_REPORT_PAGE = "/contracts/report"
CONTRACTS_REPORT_CSV = "/contracts/report.csv"
CONTRACTS_REPORT_PDF = "/contracts/report.pdf"

# --- pages: incidents (collector.http.page_incidents) ---------------------------------

INCIDENTS_PAGE = "/incidents"
INCIDENT_FORM = "/incidents/{incident_id}/{action}"

# --- pages: password reset (collector.http.page_reset) --------------------------------

FORGOT_PASSWORD_PAGE = "/forgot-password"
RESET_PASSWORD_PAGE = "/reset-password"

# --- pages: settings (collector.http.page_settings) -----------------------------------

SETTINGS_PAGE = "/settings"
SETTINGS_API_KEYS = "/settings/api-keys"
SETTINGS_API_KEY_REVOKE = "/settings/api-keys/{key_id}/revoke"
SETTINGS_USERS = "/settings/users"
SETTINGS_USER_ACTION = "/settings/users/{user_id}/{action}"
SETTINGS_TOKENS = "/settings/tokens"
SETTINGS_TOKEN_REVOKE = "/settings/tokens/{token_id}/revoke"
SETTINGS_BACKUP_POLICY = "/settings/backup-policy"

# --- pages: notifications (collector.http.page_notify) --------------------------------

NOTIFY_PAGE = "/settings/notifications"
NOTIFY_PAGE_CHANNELS = "/settings/notifications/channels"
NOTIFY_PAGE_CHANNEL = "/settings/notifications/channels/{channel_id}"
NOTIFY_PAGE_CHANNEL_TEST = "/settings/notifications/channels/{channel_id}/test"
NOTIFY_PAGE_CHANNEL_REMOVE = "/settings/notifications/channels/{channel_id}/remove"
NOTIFY_PAGE_ROUTES = "/settings/notifications/routes"
NOTIFY_PAGE_ROUTE_REMOVE = "/settings/notifications/routes/{route_id}/remove"
NOTIFY_PAGE_SILENCES = "/settings/notifications/silences"
NOTIFY_PAGE_SILENCE_END = "/settings/notifications/silences/{silence_id}/end"
SERVER_PAGE_SILENCE = "/servers/{server_id}/silence"
