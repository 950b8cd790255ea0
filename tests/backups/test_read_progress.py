"""The archive reader's progress: the ciphertext bytes taken, every 4 MiB and at the end,
whether or not it hashes them (a restore does not)."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import tarfile
from pathlib import Path

import pytest

from protocol.backup_archive import read_identities
from recovery.extract import read_archive
from tests.backups.test_malicious import RECIPIENT, SECRET, craft, member


@pytest.mark.parametrize("restoring", [False, True], ids=["verify", "restore"])
def test_progress_counts_the_ciphertext_to_its_end(restoring: bool, tmp_path: Path) -> None:
    blob = craft(
        lambda t: [
            member(t, "small", data=b"x" * 100),
            member(t, "big", tarfile.REGTYPE, data=os.urandom(13 << 20)),
        ]
    )
    seen: list[tuple[str, int, int]] = []
    result = read_archive(
        io.BytesIO(blob),
        read_identities(SECRET),
        recipients=[RECIPIENT],
        dest=tmp_path if restoring else None,
        progress=lambda *a: seen.append(a),
        total_size=len(blob),
        hash_ciphertext=not restoring,  # as vigil-backup asks for each
    )
    sizes = [done for kind, done, total in seen if kind == "bytes" and total == len(blob)]
    assert len(sizes) == len(seen) >= 4  # every 4 MiB of 13, then the end
    assert sizes == sorted(sizes) and sizes[-1] == len(blob)
    # each report but the last at least 4 MiB past the one before
    assert all(b - a >= 4 << 20 for a, b in itertools.pairwise([0, *sizes[:-1]]))
    assert result.ciphertext_size == len(blob)
    if restoring:
        assert result.ciphertext_sha256 is None
        assert (tmp_path / "big").stat().st_size == 13 << 20
    else:
        assert result.ciphertext_sha256 == hashlib.sha256(blob).hexdigest()
