"""``vigil-backup``: the partner's tool for Vigil backups (keygen, sign-recipients, trust,
list, verify, restore, diff).

It holds the recovery key and the recipient-signing key; the collector never does. It
reaches the collector with ``--collector URL --api-key KEY`` (or ``VIGIL_COLLECTOR`` /
``VIGIL_API_KEY``) and keeps the servers' pinned keys in its own file (``--known-servers``,
``VIGIL_KNOWN_SERVERS``). Results go to stdout (``--json`` for scripts), progress and
errors to stderr; failures exit non-zero with one line saying why.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import recipient_list
from protocol.backup_archive import AgeError, generate_identity, read_identities
from recovery.api import ApiError, PartnerApi
from recovery.backups import SMALL_TEXT, BackupRefused, Checked, check_backup, diff, restore
from recovery.extract import RESTORE_THREADS, VERIFY_THREADS
from recovery.known_servers import KnownServers, KnownServersError
from recovery.signing_key import SigningKeyError, read_signing_key, signing_line

EXIT_FAILED = 1
EXIT_USAGE = 2


class _Progress:
    """``done/total MiB`` on stderr, at most a few times a second."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label = label
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, what: str, done: int, total: int) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = total and done >= total
        if now - self._last < (0.2 if self.tty else 2.0) and not final:
            return
        self._last = now
        pct = f" {100 * done / total:5.1f}%" if total else ""
        line = f"{self.label}: {done / 2**20:.1f} of {total / 2**20:.1f} MiB{pct}"
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _iso(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return str(ts or "")
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _api(args: argparse.Namespace) -> PartnerApi:
    return PartnerApi(
        args.collector or os.environ.get("VIGIL_COLLECTOR", ""),
        args.api_key or os.environ.get("VIGIL_API_KEY", ""),
    )


def _key_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BackupRefused(f"cannot read the key file {path}: {exc}") from None


def _identities(path: str) -> list:
    return read_identities(_key_text(path))


def _known(args: argparse.Namespace) -> KnownServers:
    return KnownServers(Path(args.known_servers) if args.known_servers else None)


def _notice(message: str) -> None:
    print(f"vigil-backup: {message}", file=sys.stderr)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


def cmd_keygen(args: argparse.Namespace) -> int:
    if args.add_signing_key:
        return _add_signing_key(args)
    secret, recipient = generate_identity()
    signer = Ed25519PrivateKey.generate()
    fp = recipient_list.key_fingerprint(signer)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    body = (
        f"# created: {created}\n# public key: {recipient}\n"
        f"# recipient-signing key fingerprint: {fp}\n{signing_line(signer)}\n{secret}\n"
    )
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupRefused(f"{args.out} exists: not overwriting a key file") from None
    except OSError as exc:
        raise BackupRefused(f"cannot create {args.out}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(body)
    if args.json:
        print(json.dumps({"path": args.out, "recipient": recipient, "signer": fp}))
    else:
        print(f"wrote the recovery identity to {args.out} (mode 0600); keep it offline.")
        print(f"recipient-signing key fingerprint (vigil-agent enroll --recovery-signer): {fp}")
        print("give the collector only the public recipient below (signed: sign-recipients):")
        print(recipient)
    return 0


def _add_signing_key(args: argparse.Namespace) -> int:
    """Give a key file made before signed recipient lists its signing key."""
    text = _key_text(args.out)
    read_identities(text)
    try:
        read_signing_key(text)
    except SigningKeyError:
        pass
    else:
        raise BackupRefused(f"{args.out} already has a recipient-signing key")
    signer = Ed25519PrivateKey.generate()
    fp = recipient_list.key_fingerprint(signer)
    line = f"# recipient-signing key fingerprint: {fp}\n{signing_line(signer)}\n"
    try:
        with open(args.out, "a") as f:
            f.write(("" if text.endswith("\n") else "\n") + line)
    except OSError as exc:
        raise BackupRefused(f"cannot write {args.out}: {exc.strerror}") from None
    _emit(args, {"path": args.out, "signer": fp}, f"added a recipient-signing key: {fp}")
    return 0


def cmd_signer(args: argparse.Namespace) -> int:
    fp = recipient_list.key_fingerprint(_signing_key(args.identity))
    _emit(args, {"signer": fp}, fp)
    return 0


def _signing_key(path: str) -> Ed25519PrivateKey:
    try:
        return read_signing_key(_key_text(path))
    except SigningKeyError as exc:
        raise BackupRefused(f"{path}: {exc}") from None


def cmd_sign_recipients(args: argparse.Namespace) -> int:
    key = _signing_key(args.identity)
    try:
        signed = recipient_list.sign(args.recipients, key, time.time())
    except recipient_list.RecipientListError as exc:
        raise BackupRefused(str(exc)) from None
    fp = recipient_list.key_fingerprint(key)
    if args.json:
        print(json.dumps({"signer": fp, "recipients": args.recipients, "signed": signed}))
    else:
        print(f"recipient list of {len(set(args.recipients))} signed by {fp}.")
        print("give it to the collector: vigil-collector recovery-key add --partner NAME LIST")
        print(signed)
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    known = _known(args)
    offered = _api(args).public_key(args.server)
    fp = recipient_list.fingerprint(offered)
    want = args.fingerprint and recipient_list.normalize_fingerprint(args.fingerprint)
    if want and want != fp:
        raise BackupRefused(
            f"server {args.server}: the collector offers key {fp}, not {want}: not pinned"
        )
    old = known.get(args.server)
    if old is not None and old.fingerprint != fp and not want:
        raise BackupRefused(
            f"{known.changed_key_message(args.server, offered)}. 'trust' replaces a pinned "
            "key only with --fingerprint"
        )
    known.pin(args.server, offered)
    known.save()
    _emit(
        args,
        {"server": args.server, "fingerprint": fp, "known_servers": str(known.path)},
        f"pinned the signing key of server {args.server}: {fp} (in {known.path})",
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    backups = _api(args).backups(args.server)
    lines = [f"{'ID':<28} {'SEQ':>5} {'KIND':<10} {'CREATED':<26} {'SIZE':>12}  STATUS"]
    for b in sorted(backups, key=lambda b: int(b.get("seq", 0))):
        lines.append(
            f"{b.get('id')!s:<28} {b.get('seq')!s:>5} {b.get('kind')!s:<10} "
            f"{_iso(b.get('created_at')):<26} {b.get('size') or 0:>12}  {b.get('status', '')}"
        )
    _emit(args, {"server": args.server, "backups": backups}, "\n".join(lines))
    return 0


def _summary(checked: Checked) -> dict[str, Any]:
    h = checked.header
    m = checked.result.manifest
    return {
        "backup_id": checked.record.get("id"),
        "seq": h.seq,
        "kind": h.kind,
        "created_at": h.created_at,
        "archive_backup_id": checked.full_id,
        "files": checked.result.files,
        "entries": checked.result.entries,
        "plaintext_size": checked.result.plaintext_size,
        "ciphertext_size": checked.result.ciphertext_size,
        "content_digest": m.content_digest,
        "verified": True,
    } | (
        {}  # a restore does not hash the stored object (recovery.backups.check_backup)
        if checked.result.ciphertext_sha256 is None
        else {"ciphertext_sha256": checked.result.ciphertext_sha256}
    )


def cmd_verify(args: argparse.Namespace) -> int:
    checked = check_backup(
        _api(args),
        args.server,
        args.backup,
        _identities(args.identity),
        known=_known(args),
        notice=_notice,
        progress=_Progress("verifying", args.json),
        threads=args.threads,
    )
    s = _summary(checked)
    _emit(
        args,
        s,
        f"backup {s['backup_id']} (seq {s['seq']}, {s['kind']}) verifies: signature, "
        f"ciphertext SHA-256, every chunk and {s['files']} file hashes",
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    to = Path(args.to)
    checked = restore(
        _api(args),
        args.server,
        args.backup,
        _identities(args.identity),
        to,
        known=_known(args),
        notice=_notice,
        progress=_Progress("restoring", args.json),
        skip_unsafe_links=args.skip_unsafe_links,
        threads=args.threads,
    )
    skipped = checked.result.skipped_links
    for name in skipped:
        print(f"vigil-backup restore: left out symlink {name} (points outside)", file=sys.stderr)
    s = _summary(checked) | {"restored_to": str(to.resolve()), "skipped_links": skipped}
    _emit(
        args,
        s,
        f"restored backup {s['backup_id']} (seq {s['seq']}): {s['entries']} entries to {to}",
    )
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    api = _api(args)
    ids = _identities(args.identity)
    known = _known(args)
    a, b = (
        check_backup(
            api,
            args.server,
            which,
            ids,
            known=known,
            notice=_notice,
            keep_small=SMALL_TEXT,
            keep_entries=True,
            threads=args.threads,
        )
        for which in (args.a, args.b)
    )
    d = diff(a, b)
    lines = [f"diff {d['a']} -> {d['b']}"]
    lines += [f"+ {p}" for p in d["added"]]
    lines += [f"- {p}" for p in d["removed"]]
    for c in d["changed"]:
        lines.append(f"~ {c['path']} ({', '.join(c['changes'])})")
        if c.get("diff"):
            lines.append(c["diff"].rstrip("\n"))
    if len(lines) == 1:
        lines.append("no differences")
    _emit(args, d, "\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vigil-backup",
        description="The partner's tool for Vigil backups: keygen, list, verify, restore, diff.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--collector", help="collector URL (env VIGIL_COLLECTOR)")
    remote.add_argument("--api-key", help="partner API key (env VIGIL_API_KEY)")
    remote.add_argument("--server", required=True, help="server id")
    remote.add_argument(
        "--known-servers",
        metavar="FILE",
        help="pinned server keys (env VIGIL_KNOWN_SERVERS, default ~/.config/vigil/known_servers)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    _key_commands(sub, common)
    _backup_commands(sub, common, remote)
    return p


def _key_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """keygen, sign-recipients, signer: the partner's own keys, no collector needed."""
    k = sub.add_parser("keygen", parents=[common], help="make a recovery identity (age key)")
    k.add_argument("--out", required=True, help="key file to create (mode 0600)")
    k.add_argument(
        "--add-signing-key",
        action="store_true",
        help="add a recipient-signing key to an existing key file (--out) made without one",
    )
    k.set_defaults(func=cmd_keygen)

    sr = sub.add_parser(
        "sign-recipients",
        parents=[common],
        help="sign the recipient list agents may encrypt to (for recovery-key add)",
    )
    sr.add_argument("--identity", required=True, help="key file made by keygen")
    sr.add_argument("recipients", nargs="+", metavar="RECIPIENT", help="age1…")
    sr.set_defaults(func=cmd_sign_recipients)

    sg = sub.add_parser(
        "signer", parents=[common], help="print the key file's recipient-signing fingerprint"
    )
    sg.add_argument("--identity", required=True, help="key file made by keygen")
    sg.set_defaults(func=cmd_signer)


def _backup_commands(
    sub: Any, common: argparse.ArgumentParser, remote: argparse.ArgumentParser
) -> None:
    """trust, list, verify, restore, diff: a server's backups on a collector."""
    t = sub.add_parser(
        "trust",
        parents=[common, remote],
        help="pin a server's signing key (first time, or to accept a changed key)",
    )
    t.add_argument(
        "--fingerprint",
        help="the key's fingerprint as shown by 'vigil-agent status' on the server; "
        "required to replace a pinned key",
    )
    t.set_defaults(func=cmd_trust)

    ls = sub.add_parser("list", parents=[common, remote], help="list a server's backups")
    ls.set_defaults(func=cmd_list)

    ident = argparse.ArgumentParser(add_help=False)
    ident.add_argument("--identity", required=True, help="age key file (AGE-SECRET-KEY-1…)")
    ident.add_argument(
        "--threads",
        type=int,
        choices=(1, 2, 3),
        help=f"threads reading the backup (default {VERIFY_THREADS} for verify and diff, "
        f"{RESTORE_THREADS} for restore): 3 downloads and decrypts on one, decompresses "
        "on another while the third checks the files; 2 downloads, decrypts and "
        "decompresses on one while the other checks and writes the files; 1 does "
        "everything on one",
    )

    v = sub.add_parser("verify", parents=[common, remote, ident], help="check without extracting")
    v.add_argument("--backup", default="latest", help="backup id, seq or 'latest'")
    v.set_defaults(func=cmd_verify)

    r = sub.add_parser("restore", parents=[common, remote, ident], help="verify and extract")
    r.add_argument("--backup", default="latest", help="backup id, seq or 'latest'")
    r.add_argument("--to", required=True, help="target directory (new or empty)")
    r.add_argument(
        "--skip-unsafe-links",
        action="store_true",
        help="leave out symlinks that could point outside the target (e.g. absolute ones, "
        "common in /etc) instead of refusing the restore; they are listed on stderr",
    )
    r.set_defaults(func=cmd_restore)

    d = sub.add_parser("diff", parents=[common, remote, ident], help="compare two backups")
    d.add_argument("a", help="older backup id, seq or 'latest'")
    d.add_argument("b", help="newer backup id, seq or 'latest'")
    d.set_defaults(func=cmd_diff)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (
        ApiError,
        BackupRefused,
        AgeError,
        KnownServersError,
        recipient_list.RecipientListError,
        OSError,  # e.g. a target directory that cannot be made: one line, not a traceback
    ) as exc:
        print(f"vigil-backup {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vigil-backup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
