"""Directories a restore makes carry ext4's TOPDIR flag only while it runs
(``recovery/dir_spread.py``): marking sets it, unmarking clears it and nothing else, a
file system that refuses it turns the marking off, and a restored tree keeps no flag."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from protocol.backup_archive import generate_identity, read_identities
from recovery.dir_spread import FS_TOPDIR_FL, DirSpread, flags
from recovery.extract import read_archive
from tests.backups.archive_helpers import archive_tree


def test_mark_then_unmark(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    spread = DirSpread()
    if spread.mark(str(d)):
        before = flags(str(d))
        assert before & FS_TOPDIR_FL
        spread.unmark(str(d))
        assert flags(str(d)) == before & ~FS_TOPDIR_FL
    else:  # a file system without inode flags (tmpfs) or another system than Linux
        assert spread.enabled is False
        assert spread.mark(str(d)) is False


def test_a_refusal_turns_marking_off(tmp_path: Path) -> None:
    spread = DirSpread()
    assert spread.mark(str(tmp_path / "missing")) is False
    assert spread.enabled is False
    ok = tmp_path / "ok"
    ok.mkdir()
    assert spread.mark(str(ok)) is False  # no second try


def test_restored_directories_keep_no_flag(tree: Path, tmp_path: Path) -> None:
    secret, recipient = generate_identity()
    blob, _ = archive_tree(tree, [recipient], threads=1)
    dest = tmp_path / "restored"
    dest.mkdir()
    read_archive(io.BytesIO(blob), read_identities(secret), recipients=[recipient], dest=dest)
    dirs = [p for p in dest.rglob("*") if p.is_dir() and not p.is_symlink()]
    assert len(dirs) >= 3
    for d in dirs:
        try:
            got = flags(str(d))
        except OSError:  # the file system keeps no inode flags: nothing to leave behind
            continue
        assert not got & FS_TOPDIR_FL, d


def test_the_restore_marks_every_directory_it_makes_and_unmarks_it(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recovery.extract as extract

    marked: list[str] = []
    unmarked: list[str] = []

    class Recording(DirSpread):
        def mark(self, path: str) -> bool:
            marked.append(path)
            return super().mark(path) or True  # unmark it too where the fs refused

        def unmark(self, path: str) -> None:
            unmarked.append(path)
            super().unmark(path)

    monkeypatch.setattr(extract, "DirSpread", Recording)
    secret, recipient = generate_identity()
    blob, _ = archive_tree(tree, [recipient], threads=1)
    dest = tmp_path / "restored"
    dest.mkdir()
    read_archive(io.BytesIO(blob), read_identities(secret), recipients=[recipient], dest=dest)
    made = {str(p) for p in dest.rglob("*") if p.is_dir() and not p.is_symlink()}
    assert made and set(marked) <= made
    assert sorted(unmarked) == sorted(marked)
    # every directory the archive names was marked (parents made implicitly are not)
    assert len(marked) >= 3
