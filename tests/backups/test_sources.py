"""Sources are walked in archive order, and the stat cache is read as a merge in that order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.backup.config import parse_backup_config
from agent.backup.sources import (
    SourceError,
    StatCache,
    collect_sources,
    order_key,
    quick_digest,
)


def test_walk_order_excludes_and_nesting(tmp_path: Path) -> None:
    root = tmp_path / "cfg"
    for rel in ("a/x.conf", "a/x.tmp", "a b/y", "a-b/z", "a/sub/w", "cache/big"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    os.mkfifo(root / "fifo")
    settings = parse_backup_config(
        {
            # a nested path and a glob that overlaps: each entry once
            "paths": [str(root / "a" / "sub"), str(root), str(root / "a*")],
            "exclude": ["*.tmp", str(root / "cache")],
        }
    )
    entries, notes = collect_sources(settings)
    names = [e.path[len(str(root)) :] for e in entries]
    assert names == [
        "",
        "/a",
        "/a/sub",
        "/a/sub/w",
        "/a/x.conf",
        "/a b",
        "/a b/y",
        "/a-b",
        "/a-b/z",
    ]
    assert [e.name for e in entries] == sorted((e.name for e in entries), key=order_key)
    assert any("fifo" in n for n in notes)
    with pytest.raises(SourceError):
        collect_sources(parse_backup_config({"paths": [str(root / "missing")]}))


def test_stat_cache_merge(tmp_path: Path) -> None:
    root = tmp_path / "t"
    for rel in ("a", "b/c", "b/d", "e"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    settings = parse_backup_config({"paths": [str(root)]})
    entries, _ = collect_sources(settings)
    files = [e for e in entries if e.kind == "file"]
    path = tmp_path / "cache.json"
    with StatCache(path) as cache:
        for e in files:
            cache.store(e.name, os.lstat(e.path), "0" * 64)
        cache.commit()
    with StatCache(path) as cache:  # every file hits, in order
        assert all(cache.lookup(e) == "0" * 64 for e in files)
    with StatCache(path) as cache:  # skipping some is fine; going back misses
        assert cache.lookup(files[2]) is not None
        assert cache.lookup(files[0]) is None
    (root / "b" / "c").write_text("changed")
    entries, _ = collect_sources(settings)
    with StatCache(path) as cache:
        hits = {e.name.rsplit("/", 1)[-1]: cache.lookup(e) for e in entries if e.kind == "file"}
    assert hits["c"] is None and hits["d"] is not None
    digest, nfiles, size, _ = quick_digest(settings, path, ["age1x"])
    assert digest is None and nfiles == 4 and size == len("a") + len("changed") + 3 + 1
