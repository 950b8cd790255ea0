"""SIGHUP: the running agent re-reads its configuration file.

What a reload may change takes effect at once, without touching what is in flight: the
spool stays as it is (only its size limit follows the file), the link to the collector is
kept (its identity does not come from the file), and a backup that is running finishes
with the settings it started with (the new ``[backup]`` table applies from the next run).
What cannot change under a running process (the state directory, the collector link's
proxy: changing it would cut an upload in progress) is kept and named in
the log: it takes effect at the next restart.

A file that does not load (bad TOML, a wrong key, unreadable) changes nothing: the
running configuration stays and one log line names the file, the key and the reason.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from agent import config as agent_config
from agent.health.host import HostProbe
from agent.health.volumes import VolumeProbe
from agent.identity import hostname
from protocol import log_format

if TYPE_CHECKING:
    from agent.daemon import Agent

log = logging.getLogger("vigil.agent")

RESTART_ONLY = ("state_dir", "collector_proxy")
"""Keys a running agent keeps until it is restarted."""


def changed_keys(old: agent_config.AgentConfig, new: agent_config.AgentConfig) -> list[str]:
    """The configuration's fields that differ (``source`` aside)."""
    return [
        f.name
        for f in dataclasses.fields(old)
        if f.name != "source" and getattr(old, f.name) != getattr(new, f.name)
    ]


def read_new(agent: Agent) -> agent_config.AgentConfig | None:
    """The file as it is now, or None (logged) when it does not load."""
    try:
        return agent_config.load(agent.config.source)
    except agent_config.AgentConfigError as exc:
        log.error(
            "configuration not reloaded; the running configuration stays",
            extra={
                "event": "reload_refused",
                "file": exc.source,
                "key": exc.key,
                "reason": f"expected {exc.expected}",
            },
        )
        return None


async def reload(agent: Agent) -> bool:
    """Apply the file's current contents to ``agent``; False when it was refused."""
    new = read_new(agent)
    if new is None:
        return False
    old = agent.config
    for key in RESTART_ONLY:
        if getattr(new, key) != getattr(old, key):
            log.warning(
                "configuration key needs a restart; keeping the running value",
                extra={
                    "event": "reload_needs_restart",
                    "file": new.source,
                    "key": key,
                    "running": str(getattr(old, key)),
                    "configured": str(getattr(new, key)),
                },
            )
            new = dataclasses.replace(new, **{key: getattr(old, key)})
    changed = changed_keys(old, new)
    agent.config = new
    agent.spool.max_bytes = new.spool_max_bytes
    agent.sender.retry_max_s = new.retry_max_s
    agent.sender.refused_check_s = new.refused_check_s
    if "hostname" in changed:
        agent.host = HostProbe(hostname(new.hostname))
    if {"recording_volumes", "ignore_fstypes"} & set(changed):
        agent.volumes = VolumeProbe(agent.state_dir, new.recording_volumes, new.ignore_fstypes)
    if {"log_level", "log_format"} & set(changed):
        log_format.configure(new.log_format, new.log_level)
    if "cameras" in changed:
        await agent.replace_cameras(new.cameras)
    if "backup" in changed:
        await agent.replace_backup(new.backup)
    log.info(
        "configuration reloaded",
        extra={"event": "reloaded", "file": new.source, "changed": ",".join(changed) or "-"},
    )
    return True
