"""Back up a tree, restore it elsewhere, compare byte for byte and metadata — with Vigil's
reader, and with stock ``age -d | zstd -d | tar -x``."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from protocol.backup_archive import generate_identity, read_identities
from recovery.extract import ArchiveRefused, read_archive
from tests.backups.archive_helpers import archive_tree, snapshot


# writer: inline; a second thread; zstd's workers. Reader: all inline; decryption and
# decompression ahead; the download and ciphertext hash on a third thread.
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_round_trip_exact(tree: Path, tmp_path: Path, threads: int) -> None:
    secret, recipient = generate_identity()
    blob, result = archive_tree(tree, [recipient], threads=threads)
    assert result.size == len(blob)
    dest = tmp_path / "restored"
    dest.mkdir()
    read = read_archive(
        io.BytesIO(blob),
        read_identities(secret),
        recipients=[recipient],
        dest=dest,
        keep_entries=True,
        threads=threads,
    )
    assert read.manifest.content_digest == result.content_digest
    assert result.files == len(read.manifest.entries) == read.entries
    paths = [e.path for e in read.manifest.entries]
    assert paths == sorted(paths, key=lambda p: p.replace("/", "\x00"))  # archive order
    assert read.ciphertext_sha256 == result.sha256
    src_root = tree
    rel = src_root.relative_to("/")
    restored = snapshot(dest / rel)
    original = snapshot(src_root)
    assert restored.keys() == original.keys()
    for name, meta in original.items():
        assert restored[name] == meta, name
    assert (dest / ".vigil").exists() is False
    assert len(original) >= 14


@pytest.mark.parametrize("threads", [1, 3])
def test_stock_tools_give_the_same_tree(tree: Path, tmp_path: Path, threads: int) -> None:
    secret, recipient = generate_identity()
    blob, _ = archive_tree(tree, [recipient], threads=threads)
    (tmp_path / "b.age").write_bytes(blob)
    (tmp_path / "key").write_text(secret + "\n")
    out = tmp_path / "stock"
    out.mkdir()
    subprocess.run(
        f"age -d -i {tmp_path / 'key'} {tmp_path / 'b.age'} | zstd -d | tar -x -p -f - -C {out}",
        shell=True,
        check=True,
    )
    rel = tree.relative_to("/")
    # tar headers carry whole seconds (the manifest keeps nanoseconds for vigil-backup)
    assert snapshot(out / rel, exact_mtime=False) == snapshot(tree, exact_mtime=False)
    assert (out / ".vigil" / "manifest.json").is_file()


def test_wrong_recipient_list_breaks_the_digest(tree: Path) -> None:
    secret, recipient = generate_identity()
    blob, _ = archive_tree(tree, [recipient])
    with pytest.raises(ArchiveRefused, match="digest"):
        read_archive(io.BytesIO(blob), read_identities(secret), recipients=["age1other"])
