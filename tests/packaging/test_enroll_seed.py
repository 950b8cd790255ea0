"""``vigil-agent enroll`` without --collector/--token: the environment, then a seed file or
standard input, as the package's postinst and installation scripts use it. Against a real
collector on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from harness.processes import BIN, Agent, Collector


def _enroll(
    agent: Agent, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    return subprocess.run(
        [str(BIN / "vigil-agent"), "enroll", "--config", str(agent.config), *args],
        capture_output=True,
        text=True,
        input=stdin if stdin is not None else "",
        env={**base, **(env or {})},
        timeout=60,
    )


def _seed(path: Path, url: str, token: str, mode: int = 0o600) -> Path:
    path.write_text(f'collector = "{url}"\ntoken = "{token}"\n')
    path.chmod(mode)
    return path


def _server_id(agent: Agent) -> str:
    return json.loads((agent.state_dir / "identity.json").read_text())["server_id"]


def test_seed_file_enrolls_and_is_deleted(collector: Collector, make_agent, tmp_path) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    seed = _seed(tmp_path / "enroll.toml", collector.url, token)
    out = _enroll(agent, "--seed", str(seed))
    assert out.returncode == 0, out.stderr
    assert _server_id(agent).startswith("srv_")
    assert not seed.exists()
    assert f"deleted the seed file {seed}" in out.stdout


def test_seed_on_stdin_enrolls(collector: Collector, make_agent) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    out = _enroll(agent, "--seed", "-", stdin=f'collector = "{collector.url}"\ntoken = "{token}"\n')
    assert out.returncode == 0, out.stderr
    assert _server_id(agent).startswith("srv_")


def test_environment_enrolls(collector: Collector, make_agent) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    out = _enroll(agent, env={"VIGIL_COLLECTOR": collector.url, "VIGIL_ENROLL_TOKEN": token})
    assert out.returncode == 0, out.stderr
    assert _server_id(agent).startswith("srv_")


def test_flag_wins_over_environment(collector: Collector, make_agent) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    out = _enroll(
        agent,
        "--token",
        token,
        env={"VIGIL_COLLECTOR": collector.url, "VIGIL_ENROLL_TOKEN": "vgl_enr_wrong"},
    )
    assert out.returncode == 0, out.stderr


def test_seed_others_can_read_is_refused_and_kept(
    collector: Collector, make_agent, tmp_path
) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    seed = _seed(tmp_path / "enroll.toml", collector.url, token, mode=0o644)
    out = _enroll(agent, "--seed", str(seed))
    assert out.returncode == 2
    assert "chmod 600" in out.stderr and "0644" in out.stderr
    assert seed.exists() and not (agent.state_dir / "identity.json").exists()


def test_seed_with_unknown_key_is_refused(make_agent, tmp_path) -> None:
    seed = tmp_path / "enroll.toml"
    seed.write_text('collector = "http://127.0.0.1:1"\ntokne = "vgl_enr_x"\n')
    seed.chmod(0o600)
    out = _enroll(make_agent(), "--seed", str(seed))
    assert out.returncode == 2 and "unknown key 'tokne'" in out.stderr


def test_nothing_given_names_every_source(make_agent, tmp_path) -> None:
    out = _enroll(make_agent(), "--seed", "-", stdin="")
    assert out.returncode == 2
    for hint in ("--collector", "VIGIL_ENROLL_TOKEN", "/etc/vigil/enroll.toml"):
        assert hint in out.stderr


def test_enrolled_agent_keeps_identity_and_seed(collector: Collector, make_agent, tmp_path) -> None:
    _, token = collector.partner("acme")
    agent = make_agent()
    first = agent.enroll(collector.url, token)
    _, token2 = collector.partner("other")
    seed = _seed(tmp_path / "enroll.toml", collector.url, token2)
    out = _enroll(agent, "--seed", str(seed))
    assert out.returncode != 0 and "already enrolled" in out.stderr
    assert _server_id(agent) == first and seed.exists()
