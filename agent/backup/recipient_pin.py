"""The partner's signing key, pinned at enrollment: whom the agent may encrypt backups to.

``vigil-agent enroll --recovery-signer FP`` (or a token ``vgl_enr_…#FP``, or later
``vigil-agent recovery-signer FP`` on the server itself) writes the fingerprint to
``<state_dir>/recovery-signer.json`` (0600). From then on a backup is
encrypted only when every recipient the collector asks for is named in a recipient list
signed by that key (``protocol.recipient_list``); anything else fails the run with the
reason, never a silent extra recipient. The newest list's signing time is kept too, so
the collector cannot bring back an older list (one naming a recipient the partner has
since dropped). Enrollments without a pin keep working; status and doctor say so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.identity import write_atomic
from protocol import recipient_list

PIN_FILE = "recovery-signer.json"


class RecipientsRefused(Exception):
    """The collector's recipients are not all approved by the pinned partner key."""


@dataclass
class Pin:
    fingerprint: str
    newest_list_at: float = 0.0
    """``created_at`` of the newest signed list used so far."""


def split_token(token: str) -> tuple[str, str | None]:
    """An enrollment token as given by the partner, ``vgl_enr_…`` or ``vgl_enr_…#FP``:
    (the token the collector knows, the signing-key fingerprint or None)."""
    token, sep, fp = token.strip().partition("#")
    if not sep:
        return token, None
    return token, recipient_list.normalize_fingerprint(fp)


def load_pin(state_dir: Path) -> Pin | None:
    """The pinned key, or None for an enrollment without one. A damaged pin file is an
    error (``RecipientsRefused``), not a silent return to "no pin"."""
    path = Path(state_dir) / PIN_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RecipientsRefused(f"cannot read the pinned partner key {path}: {exc}") from None
    try:
        return Pin(
            fingerprint=recipient_list.normalize_fingerprint(str(data["fingerprint"])),
            newest_list_at=float(data.get("newest_list_at", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RecipientsRefused(f"the pinned partner key file {path} is damaged: {exc}") from None


def save_pin(state_dir: Path, pin: Pin) -> None:
    write_atomic(Path(state_dir) / PIN_FILE, json.dumps(asdict(pin), indent=2).encode())


def clear_pin(state_dir: Path) -> None:
    (Path(state_dir) / PIN_FILE).unlink(missing_ok=True)


def approved_recipients(
    state_dir: Path, offered: list[str], signed_list: str
) -> tuple[list[str], str | None]:
    """The recipients to encrypt to, and the pinned fingerprint (None: no pin, the
    collector's list is used as before). Raises ``RecipientsRefused`` naming the reason."""
    pin = load_pin(state_dir)
    if pin is None:
        return list(offered), None
    if not signed_list:
        raise RecipientsRefused(
            "the collector sent no recipient list signed by the partner's key "
            f"{pin.fingerprint} (pinned at enrollment): not encrypting to an unapproved list; "
            "the partner adds one with 'vigil-backup sign-recipients' and "
            "'vigil-collector recovery-key add'"
        )
    try:
        signed = recipient_list.verify(signed_list, pin.fingerprint)
    except recipient_list.RecipientListError as exc:
        raise RecipientsRefused(f"recipient list refused: {exc}") from None
    if signed.created_at < pin.newest_list_at:
        raise RecipientsRefused(
            "recipient list refused: it is older than one already used "
            f"(signed at {signed.created_at:.0f}, newest seen {pin.newest_list_at:.0f})"
        )
    approved = set(signed.recipients)
    extra = sorted(r for r in offered if r not in approved)
    if extra:
        raise RecipientsRefused(
            f"the collector asks to encrypt to {extra[0]}, which the partner's signed "
            f"recipient list (key {pin.fingerprint}) does not name: backup not made"
        )
    if signed.created_at > pin.newest_list_at:
        pin.newest_list_at = signed.created_at
        save_pin(state_dir, pin)
    # Encrypting to fewer than the signed recipients is safe: the collector can only drop
    # approved ones (e.g. one the partner removed with ``recovery-key remove``).
    return list(offered), pin.fingerprint


def recipient_signer_check(state_dir: Path) -> tuple[str, str, str]:
    """``vigil-agent doctor``'s line: (level, name, text). No pin is a warning, not an
    error: enrollments made before pinning existed keep working."""
    name = "backup recipients"
    try:
        pin = load_pin(state_dir)
    except RecipientsRefused as exc:
        return "fail", name, f"{exc}; pin it again: vigil-agent recovery-signer FINGERPRINT"
    if pin is None:
        return (
            "warn",
            name,
            "no partner signing key pinned: backups are encrypted to whatever recipients the "
            "collector names; pin the partner's key: vigil-agent recovery-signer FINGERPRINT",
        )
    return "ok", name, f"only recipients signed by partner key {pin.fingerprint}"
