"""Archives a restore must refuse: nothing may land outside the target directory."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from protocol.backup_archive import (
    MANIFEST_NAME,
    AgeWriter,
    Manifest,
    ManifestEntry,
    content_digest,
    encode_manifest,
    generate_identity,
    read_identities,
)
from recovery.extract import ArchiveRefused, read_archive

SECRET, RECIPIENT = generate_identity()


def craft(
    add: Callable[[tarfile.TarFile], list[ManifestEntry]],
    manifest: bool = True,
    recipient: str = RECIPIENT,
) -> bytes:
    """An archive built by hand with tarfile, encrypted like a real one, with a manifest
    that describes it truthfully (so only the safety rules can refuse it)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = add(tar)
        if manifest:
            m = Manifest(content_digest=content_digest(entries, [recipient]), entries=entries)
            body = encode_manifest(m)
            ti = tarfile.TarInfo(MANIFEST_NAME)
            ti.size = len(body)
            tar.addfile(ti, io.BytesIO(body))
    out = io.BytesIO()
    w = AgeWriter(out, [recipient])
    w.write(zstandard.ZstdCompressor().compress(raw.getvalue()))
    w.close()
    return out.getvalue()


def member(
    tar: tarfile.TarFile, name: str, type_: bytes = tarfile.REGTYPE, data: bytes = b"x", link=""
) -> ManifestEntry:
    import hashlib

    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = 0o644
    ti.linkname = link
    kind = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink"}.get(
        type_, "file"
    )
    if type_ == tarfile.REGTYPE:
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    else:
        tar.addfile(ti)
    return ManifestEntry(
        path=name.rstrip("/"),
        type=kind,  # type: ignore[arg-type]
        mode=0o644,
        size=len(data) if kind == "file" else 0,
        sha256=hashlib.sha256(data).hexdigest() if kind == "file" else None,
        target=link or None,
    )


CASES: dict[str, Callable[[tarfile.TarFile], list[ManifestEntry]]] = {
    "absolute path": lambda t: [member(t, "/tmp/vigil-evil-abs")],
    "dot-dot": lambda t: [member(t, "ok/../../evil")],
    "dot-dot leading": lambda t: [member(t, "../evil")],
    "symlink absolute": lambda t: [member(t, "etc/l", tarfile.SYMTYPE, link="/etc/passwd")],
    "symlink escaping": lambda t: [member(t, "etc/l", tarfile.SYMTYPE, link="../../x")],
    "symlink dot-dot inside": lambda t: [member(t, "a/l", tarfile.SYMTYPE, link="s/../../x")],
    "write through symlink": lambda t: [
        member(t, "etc", tarfile.SYMTYPE, link="sub"),
        member(t, "etc/passwd"),
    ],
    "hard link": lambda t: [member(t, "a"), member(t, "b", tarfile.LNKTYPE, link="a")],
    "char device": lambda t: [member(t, "dev/null", tarfile.CHRTYPE)],
    "block device": lambda t: [member(t, "dev/sda", tarfile.BLKTYPE)],
    "fifo": lambda t: [member(t, "fifo", tarfile.FIFOTYPE)],
    "duplicate": lambda t: [member(t, "a"), member(t, "a", data=b"y")],
    "reserved name": lambda t: [member(t, ".vigil/x")],
    "file over a made parent": lambda t: [member(t, "a/b/c"), member(t, "a/b")],
    "file over a made ancestor": lambda t: [member(t, "a/b/c"), member(t, "a")],
    "symlink over a made ancestor": lambda t: [
        member(t, "a/b/c"),
        member(t, "a", tarfile.SYMTYPE, link="x"),
    ],
    "sparse file": lambda t: [member(t, "disk.img", tarfile.GNUTYPE_SPARSE)],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused(case: str, tmp_path: Path) -> None:
    blob = craft(CASES[case])
    dest = tmp_path / "parent" / "dest"
    dest.mkdir(parents=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ArchiveRefused):
        read_archive(io.BytesIO(blob), read_identities(SECRET), recipients=[RECIPIENT], dest=dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "evil").exists() and not (tmp_path / "parent" / "evil").exists()
    assert not Path("/tmp/vigil-evil-abs").exists()


def test_inside_symlink_accepted(tmp_path: Path) -> None:
    blob = craft(
        lambda t: [
            member(t, "a", tarfile.DIRTYPE),
            member(t, "a/f"),
            member(t, "a/l", tarfile.SYMTYPE, link="../a/f"),
        ]
    )
    read_archive(io.BytesIO(blob), read_identities(SECRET), recipients=[RECIPIENT], dest=tmp_path)
    assert (tmp_path / "a" / "l").read_bytes() == b"x"


def test_missing_manifest_refused(tmp_path: Path) -> None:
    blob = craft(lambda t: [member(t, "a")], manifest=False)
    with pytest.raises(ArchiveRefused, match="no manifest"):
        read_archive(io.BytesIO(blob), read_identities(SECRET), recipients=[RECIPIENT])


@pytest.mark.parametrize("restoring", [False, True], ids=["verify", "restore"])
@pytest.mark.parametrize("wrong", [0, 37, 99, 100])
def test_manifest_mismatch_refused(restoring: bool, wrong: int, tmp_path: Path) -> None:
    """One file whose content is not the manifest's, among 100 small files and one large
    one (100), is refused: in a restore the small ones are hashed by the writing threads,
    the large one as it streams."""

    def add(t: tarfile.TarFile) -> list[ManifestEntry]:
        entries = [member(t, f"f{i:03d}", data=b"real %d" % i) for i in range(100)]
        entries.append(member(t, "f100", data=bytes(range(256)) * 5000))
        entries[wrong].sha256 = "0" * 64
        return entries

    dest = tmp_path if restoring else None
    with pytest.raises(ArchiveRefused, match=f"'f{wrong:03d}': content does not match"):
        read_archive(
            io.BytesIO(craft(add)), read_identities(SECRET), recipients=[RECIPIENT], dest=dest
        )


@pytest.mark.parametrize("field", ["mode", "uid", "gid"])
def test_metadata_mismatch_refused(field: str) -> None:
    """Many members share their mode and owner (the reader keeps those digests): one
    whose manifest entry differs in any of the three is still told apart."""

    def add(t: tarfile.TarFile) -> list[ManifestEntry]:
        entries = [member(t, f"f{i}", data=b"same") for i in range(5)]
        setattr(entries[3], field, getattr(entries[3], field) ^ 0o10)
        return entries

    with pytest.raises(ArchiveRefused, match="'f3': metadata does not match"):
        read_archive(io.BytesIO(craft(add)), read_identities(SECRET), recipients=[RECIPIENT])


def test_skip_unsafe_links_leaves_them_out(tmp_path: Path) -> None:
    blob = craft(
        lambda t: [
            member(t, "etc", tarfile.DIRTYPE),
            member(t, "etc/a.conf"),
            member(t, "etc/abs", tarfile.SYMTYPE, link="/etc/a.conf"),
            member(t, "etc/rel", tarfile.SYMTYPE, link="a.conf"),
        ]
    )
    res = read_archive(
        io.BytesIO(blob),
        read_identities(SECRET),
        recipients=[RECIPIENT],
        dest=tmp_path,
        skip_unsafe_links=True,
    )
    assert res.skipped_links == ["etc/abs"]
    assert not (tmp_path / "etc" / "abs").is_symlink()
    assert (tmp_path / "etc" / "rel").read_bytes() == b"x"
    # but only links: a device is still refused
    dev = craft(lambda t: [member(t, "dev/null", tarfile.CHRTYPE)])
    with pytest.raises(ArchiveRefused):
        read_archive(
            io.BytesIO(dev),
            read_identities(SECRET),
            recipients=[RECIPIENT],
            dest=tmp_path / "x",
            skip_unsafe_links=True,
        )


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_reader_thread_count_refuses_a_cut_or_longer_object(threads: int) -> None:
    blob = craft(lambda t: [member(t, "etc/a.conf", data=b"a = 1\n" * 50_000)])
    ids = read_identities(SECRET)
    whole = read_archive(io.BytesIO(blob), ids, recipients=[RECIPIENT], threads=threads)
    assert (whole.ciphertext_size, whole.files) == (len(blob), 1)
    for damaged in (blob + b"x", blob[:-1], blob[: len(blob) // 2]):
        with pytest.raises(ArchiveRefused):
            read_archive(io.BytesIO(damaged), ids, recipients=[RECIPIENT], threads=threads)
