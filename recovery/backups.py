"""Verify, restore and compare stored backups: the logic behind ``vigil-backup``.

Trust comes from the agent's signature, not from the collector: the envelope is checked
against the server's public key as pinned in the partner's own file (``known_servers``:
trusted on first use or with ``vigil-backup trust``, never replaced by what the collector
says later), the header must name the server asked for and the sequence number the
listing shows, "latest" must not be older than a backup already seen, the ciphertext must
hash to the signed value, the plaintext must not exceed the signed size, and the manifest
must recompute to the signed content digest.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import backup_envelope
from protocol.backup_archive import ManifestEntry
from recovery.api import PartnerApi
from recovery.extract import ArchiveRefused, ReadResult, read_archive
from recovery.known_servers import KnownServers

SMALL_TEXT = 64 * 1024
"""Files up to this size are kept in memory by ``diff`` for a unified diff."""

Progress = Callable[[str, int, int], None]
Notice = Callable[[str], None]


class BackupRefused(Exception):
    """The backup does not verify; the message says what is wrong."""


@dataclass
class Checked:
    record: dict[str, Any]
    """The listing's entry for the backup asked for."""
    header: backup_envelope.BackupHeader
    """Its verified header (``unchanged`` records point at a full one)."""
    full_header: backup_envelope.BackupHeader
    """The verified header of the full backup whose archive was read."""
    full_id: str
    result: ReadResult


def select(backups: list[dict[str, Any]], spec: str) -> dict[str, Any]:
    """A listing entry by id, by ``seq`` number, or ``latest``."""
    usable = [b for b in backups if b.get("status", "stored") not in ("failed", "deleted")]
    if not usable:
        raise BackupRefused("this server has no stored backups")
    if spec == "latest":
        return max(usable, key=lambda b: int(b.get("seq", 0)))
    for b in usable:
        if str(b.get("id")) == spec:
            return b
    if spec.isdigit():
        for b in usable:
            if int(b.get("seq", -1)) == int(spec):
                return b
    raise BackupRefused(f"no backup {spec!r} for this server")


def pinned_keys(
    api: PartnerApi, server: str, known: KnownServers, notice: Notice | None = None
) -> list[bytes]:
    """The server's keys as the partner pinned them. First use pins the collector's answer
    (and says so); later a different answer is refused, never silently taken."""
    pinned = known.get(server)
    offered = api.public_key(server)
    if pinned is None:
        ks = known.pin(server, offered)
        known.save()
        if notice:
            notice(
                f"pinned the signing key of server {server} on first use: fingerprint "
                f"{ks.fingerprint} (compare it with 'vigil-agent status' on the server; "
                f"kept in {known.path})"
            )
        return ks.keys()
    keys = pinned.keys()
    if offered != keys[0]:
        raise BackupRefused(known.changed_key_message(server, offered))
    return keys


def _verified_header(
    api: PartnerApi, server: str, record: dict[str, Any], public_keys: Sequence[bytes]
) -> backup_envelope.BackupHeader:
    try:
        env = backup_envelope.decode(api.envelope(server, str(record["id"])))
    except backup_envelope.EnvelopeError as exc:
        raise BackupRefused(f"backup {record.get('id')}: {exc}") from None
    header = None
    error: Exception | None = None
    for key in public_keys:
        try:
            header = backup_envelope.verify(env, key)
            break
        except backup_envelope.EnvelopeError as exc:
            error = exc
    if header is None:
        raise BackupRefused(
            f"backup {record.get('id')}: {error} with the server's pinned key "
            "(signed by another key: not made by this server's agent)"
        )
    if header.server_id != server:
        raise BackupRefused(
            f"backup {record.get('id')}: envelope belongs to server {header.server_id!r}, "
            f"not {server!r}"
        )
    if "seq" in record and int(record["seq"]) != header.seq:
        raise BackupRefused(
            f"backup {record.get('id')}: the collector lists seq {record['seq']}, "
            f"the signed header says {header.seq}"
        )
    return header


def _note_seq(known: KnownServers, server: str, spec: str, seq: int) -> None:
    """Refuse ``latest`` below the highest sequence number seen before; remember a higher."""
    pinned = known.get(server)
    seen = pinned.highest_seq if pinned else 0
    if spec == "latest" and seq < seen:
        raise BackupRefused(
            f"server {server}: the newest backup the collector lists is seq {seq}, "
            f"but seq {seen} was seen before: the collector is hiding newer backups (or "
            f"they were deleted). Name a backup explicitly (--backup {seq}) to "
            "restore an older one on purpose"
        )
    if seq > seen:
        known.saw_seq(server, seq)
        known.save()


def _base_of(
    api: PartnerApi,
    server: str,
    backups: list[dict[str, Any]],
    record: dict[str, Any],
    header: backup_envelope.BackupHeader,
    keys: Sequence[bytes],
) -> tuple[dict[str, Any], backup_envelope.BackupHeader]:
    """The stored full backup an unchanged record names, with its verified header."""
    if header.base_seq is None:
        raise BackupRefused(f"backup {record['id']}: unchanged record without base_seq")
    base = [b for b in backups if int(b.get("seq", -1)) == header.base_seq]
    if not base:
        raise BackupRefused(f"backup {record['id']}: its base {header.base_seq} is not stored")
    full = _verified_header(api, server, base[0], keys)
    if full.kind != "full" or full.content_digest != header.content_digest:
        raise BackupRefused(
            f"backup {record['id']}: its base {header.base_seq} has different content"
        )
    return base[0], full


def _check_matches_header(
    full_id: str, full: backup_envelope.BackupHeader, result: ReadResult, server: str
) -> None:
    """The object read is the one the signed header describes, made for this server: its
    content (the manifest's digest, which every file's SHA-256 was checked against), its
    size, and its SHA-256 when it was taken (not by a restore)."""
    if result.manifest.content_digest != full.content_digest:
        raise BackupRefused(
            f"backup {full_id}: the manifest does not match the signed content digest"
        )
    if result.ciphertext_size != full.ciphertext_size or result.ciphertext_sha256 not in (
        None,
        full.ciphertext_sha256,
    ):
        raise BackupRefused(
            f"backup {full_id}: the stored object's SHA-256/size differ from the signed header"
        )
    if result.manifest.server_id and result.manifest.server_id != server:
        raise BackupRefused(f"backup {full_id}: archive made for another server")


def check_backup(
    api: PartnerApi,
    server: str,
    spec: str,
    identities: Sequence[X25519PrivateKey],
    *,
    known: KnownServers,
    notice: Notice | None = None,
    dest: Path | None = None,
    progress: Progress | None = None,
    keep_small: int = 0,
    keep_entries: bool = False,
    skip_unsafe_links: bool = False,
    threads: int | None = None,
) -> Checked:
    """Everything ``verify`` checks; with ``dest`` (an empty directory) also extracts.
    ``keep_entries`` keeps the manifest's entries in the result (``diff`` compares them).

    A restore (``dest`` given) takes no SHA-256 of the stored object: it is known only at
    the end, when every restored byte has already been bound to the signed header another
    way. age authenticates each chunk under the file key (only the agent and a holder of
    the recovery key have it), each file's SHA-256 is checked against the manifest, and the
    manifest's content digest against the signed one. The hash caught nothing more and
    was a tenth of the 1 GiB restore's time (``docs/decisions/backup-format.md``).
    ``verify`` and ``diff`` still take it: they check the stored object, byte for byte, as
    the collector did when it arrived."""
    backups = api.backups(server)
    record = select(backups, spec)
    keys = pinned_keys(api, server, known, notice)
    header = _verified_header(api, server, record, keys)
    _note_seq(known, server, spec, header.seq)
    full_record, full = record, header
    if header.kind == "unchanged":
        full_record, full = _base_of(api, server, backups, record, header, keys)
    if full.ciphertext_sha256 is None or full.ciphertext_size is None:
        raise BackupRefused(f"backup {full_record['id']}: header has no ciphertext hash")
    if full.plaintext_size is None:
        raise BackupRefused(f"backup {full_record['id']}: header has no plaintext size")
    stream = api.open_object(server, str(full_record["id"]))
    try:
        result = read_archive(
            stream,
            identities,
            recipients=full.recipients,
            dest=dest,
            progress=progress,
            total_size=full.ciphertext_size,
            max_plaintext=full.plaintext_size,
            keep_small=keep_small,
            keep_entries=keep_entries,
            skip_unsafe_links=skip_unsafe_links,
            threads=threads,
            hash_ciphertext=dest is None,
        )
    except ArchiveRefused as exc:
        raise BackupRefused(f"backup {full_record['id']}: {exc}") from None
    finally:
        stream.close()
    _check_matches_header(str(full_record["id"]), full, result, server)
    return Checked(
        record=record,
        header=header,
        full_header=full,
        full_id=str(full_record["id"]),
        result=result,
    )


def restore(
    api: PartnerApi,
    server: str,
    spec: str,
    identities: Sequence[X25519PrivateKey],
    to: Path,
    *,
    known: KnownServers,
    notice: Notice | None = None,
    progress: Progress | None = None,
    skip_unsafe_links: bool = False,
    threads: int | None = None,
) -> Checked:
    """Verify and extract into ``to`` (which must not exist, or be empty). The tree is built
    in a temporary directory beside ``to`` and renamed into place only when every check
    passed; on any failure it is removed and ``to`` is untouched."""
    to = Path(os.path.abspath(to))
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise BackupRefused(f"{to} exists and is not an empty directory")
    to.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{to.name}.vigil-restore-", dir=to.parent))
    try:
        checked = check_backup(
            api,
            server,
            spec,
            identities,
            known=known,
            notice=notice,
            dest=tmp,
            progress=progress,
            skip_unsafe_links=skip_unsafe_links,
            threads=threads,
        )
        if to.exists():
            to.rmdir()
        os.rename(tmp, to)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return checked


def _meta(e: ManifestEntry) -> tuple:
    return (e.type, e.mode, e.uid, e.gid, e.size, e.sha256, e.target)


def diff(a: Checked, b: Checked) -> dict[str, Any]:
    """Paths added, removed and changed from ``a`` to ``b``; unified diffs for small text."""
    ea = {e.path: e for e in a.result.manifest.entries}
    eb = {e.path: e for e in b.result.manifest.entries}
    changed = []
    for path in sorted(set(ea) & set(eb)):
        x, y = ea[path], eb[path]
        if _meta(x) == _meta(y):
            continue
        what = []
        if x.type != y.type:
            what.append("type")
        if x.sha256 != y.sha256 or x.size != y.size:
            what.append("content")
        if x.target != y.target:
            what.append("target")
        if (x.mode, x.uid, x.gid) != (y.mode, y.uid, y.gid):
            what.append("metadata")
        item: dict[str, Any] = {"path": path, "changes": what}
        ta, tb = a.result.texts.get(path), b.result.texts.get(path)
        if "content" in what and ta is not None and tb is not None:
            text = _unified(path, ta, tb)
            if text is not None:
                item["diff"] = text
        changed.append(item)
    return {
        "a": a.record.get("id"),
        "b": b.record.get("id"),
        "added": sorted(set(eb) - set(ea)),
        "removed": sorted(set(ea) - set(eb)),
        "changed": changed,
    }


def _unified(path: str, a: bytes, b: bytes) -> str | None:
    if b"\x00" in a or b"\x00" in b:
        return None
    try:
        la = a.decode("utf-8").splitlines(keepends=True)
        lb = b.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None
    return "".join(difflib.unified_diff(la, lb, f"a/{path}", f"b/{path}"))
