"""``vigil-backup`` called in this process against a backup site's collector, as the backup
tests drive it: a command with the site's collector and API key, a restore, and one backup
of a tree for it to work on."""

from __future__ import annotations

from pathlib import Path

from recovery.cli import main
from tests.backups.backup_site import BackupSite


def cli(site: BackupSite, capsys, *args: str) -> tuple[int, str, str]:
    """(exit status, standard output, standard error) of ``vigil-backup ARGS``."""
    capsys.readouterr()
    rc = main([*args, "--collector", site.collector.url, "--api-key", site.partner.api_key])
    out = capsys.readouterr()
    return rc, out.out, out.err


def restore(site: BackupSite, capsys, key: Path, dest: Path, *extra: str) -> tuple[int, str, str]:
    """``vigil-backup restore`` of the site's server with the identity ``key`` into ``dest``
    (``extra``: ``--backup N``, ``--json`` …)."""
    return cli(
        site,
        capsys,
        "restore",
        "--server",
        site.server_id,
        "--identity",
        str(key),
        "--to",
        str(dest),
        *extra,
    )


def backed_up(site: BackupSite, tree: Path, tmp_path: Path, recipient: str):
    """One backup of ``tree`` by the site's server: (its runner, its signing key)."""
    runner, _ = site.runner(
        tmp_path / f"state-{site.server_id}", {"paths": [str(tree)]}, [recipient]
    )
    out = site.run(runner.run_once())
    assert out.outcome == "ok", out.reason
    return runner, site.key
