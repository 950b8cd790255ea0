"""Recovery keys: only the public half (an age X25519 recipient, ``age1…``) is accepted.

The collector hands these to agents, which encrypt every backup to them; the matching
identity (``AGE-SECRET-KEY-1…``) stays with the partner, offline. Validation uses age's
own parser (pyrage, the Rust ``age`` crate) rather than a hand-written bech32 decoder.
"""

from __future__ import annotations

from pyrage import RecipientError, x25519

MAX_RECIPIENTS = 16


class RecipientInvalid(ValueError):
    pass


def check_recipient(text: str) -> str:
    """Return the canonical recipient or raise :class:`RecipientInvalid` saying why."""
    value = text.strip()
    if value.upper().startswith("AGE-SECRET-KEY-"):
        raise RecipientInvalid(
            "this is a private age identity: give the collector only the public recipient "
            "(age1…, printed by `vigil-backup keygen`), and keep the identity offline"
        )
    if not value.startswith("age1"):
        raise RecipientInvalid(f"not an age X25519 recipient (expected age1…): {value[:20]!r}")
    try:
        parsed = x25519.Recipient.from_str(value)
    except RecipientError as exc:
        raise RecipientInvalid(f"invalid age recipient: {exc}") from None
    return str(parsed)
