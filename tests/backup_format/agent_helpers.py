"""Build a BackupRunner wired to the fake collector."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fake_collector import AgentClient, FakeCollector

from agent.backup.config import parse_backup_config
from agent.backup.runner import BackupRunner
from protocol.messages import AgentSettings


def enroll(collector: FakeCollector, server_id: str = "srv-1") -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    collector.keys[server_id] = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key


def make_runner(
    collector: FakeCollector,
    state_dir: Path,
    key: Ed25519PrivateKey,
    backup_table: dict,
    recipients: list[str],
    server_id: str = "srv-1",
    recipient_list: str = "",
) -> tuple[BackupRunner, AgentClient]:
    client = AgentClient(collector.url, server_id)
    runner = BackupRunner(
        parse_backup_config(backup_table, "test.toml"),
        state_dir,
        key,
        server_id,
        client,
        agent_settings=AgentSettings(
            backup_interval_s=86400,
            backup_window="",
            backup_recipients=recipients,
            backup_recipient_list=recipient_list,
        ),
    )
    runner.retry_delays = (0.0, 0.0)
    return runner, client
