"""The collector's own mail (``[mail]``): the SMTP server it sends password-reset links
through, and the address people open the collector at, for the links.

Sending goes through the e-mail channels' own SMTP code (:func:`collector.notify.email.
deliver`), in a thread. Without ``host`` the collector sends no mail of its own and the
sign-in form offers no password reset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any

from collector.config import ConfigError

SECTION = "[mail]"


@dataclass(frozen=True)
class MailConfig:
    host: str = ""
    """The SMTP server; empty: no mail, no password reset."""
    port: int = 0
    """0: 587 (starttls, none) or 465 (tls)."""
    security: str = "starttls"
    username: str = ""
    password: str = ""
    sender: str = ""
    """``from``: the sender address of the collector's mail."""
    public_url: str = ""
    """The collector's address as people open it (``https://vigil.example.com``): links
    in mails start with it, never with what a request's Host header says."""
    reset_ttl_s: int = 3600
    """How long a password-reset link stays valid."""
    cafile: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    def smtp(self) -> dict[str, Any]:
        """The settings as an e-mail channel's config."""
        return {k: v for k, v in asdict(self).items() if k not in ("password", "public_url")}


_STRINGS = ("host", "security", "username", "password", "public_url", "cafile")


def mail_config(raw: dict[str, Any]) -> MailConfig:
    """``[mail]`` of the collector's whole TOML; a bad value is a :class:`ConfigError`."""
    table = raw.get("mail", {})
    if not isinstance(table, dict):
        raise ConfigError(SECTION, "mail", "a table")
    known = {*_STRINGS, "port", "from", "reset_ttl_s"}
    for key in table:
        if key not in known:
            raise ConfigError(SECTION, key, f"one of the known keys ({', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for key in (*_STRINGS, "from"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(SECTION, key, "a string")
    values = {k: table[k] for k in _STRINGS if k in table}
    values["sender"] = table.get("from", "")
    for key, low, high in (("port", 0, 65535), ("reset_ttl_s", 60, 7 * 86400)):
        v = table.get(key, getattr(MailConfig, key))
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ConfigError(SECTION, key, f"an integer from {low} to {high}")
        values[key] = v
    cfg = MailConfig(**values)
    if cfg.security not in ("starttls", "tls", "none"):
        raise ConfigError(SECTION, "security", '"starttls", "tls" or "none"')
    if cfg.host and not cfg.sender:
        raise ConfigError(SECTION, "from", "the sender address (with host set)")
    if cfg.host and not cfg.public_url.startswith(("https://", "http://")):
        raise ConfigError(SECTION, "public_url", "the collector's http(s):// address")
    return cfg


def reset_mail(cfg: MailConfig, to: str, link: str, valid_s: int) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "Vigil: reset your password"
    msg["From"] = cfg.sender
    msg["To"] = to
    minutes = valid_s // 60
    msg.set_content(
        "Someone (we hope you) asked to reset the password of your Vigil account.\n\n"
        f"Open this link within {minutes} minutes to choose a new password:\n\n{link}\n\n"
        "The link works once. If you did not ask for it, ignore this mail: your password\n"
        "stays as it is.\n"
    )
    return msg
