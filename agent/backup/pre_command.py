"""The optional pre-backup command (e.g. a database export), run with a timeout.

Its combined stdout/stderr is kept (the tail goes into the run record), and a non-zero
exit, a timeout or a command that cannot start fails the backup run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from agent import platform

OUTPUT_TAIL = 2000
"""Characters of output kept from the command."""
REASON_TAIL = 700
"""Characters of that output put in the run's reason (limits.MAX_TEXT is 1024)."""


@dataclass(frozen=True)
class PreCommandResult:
    returncode: int | None
    output_tail: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def reason(self, argv: Sequence[str]) -> str:
        cmd = " ".join(argv)
        if self.timed_out:
            head = f"pre_command timed out: {cmd}"
        elif self.returncode is None:
            head = f"pre_command could not start: {cmd}"
        else:
            head = f"pre_command exited with status {self.returncode}: {cmd}"
        # The run record's reason is cut to about 1000 characters: keep the head line and
        # the end of the output (where the error usually is).
        tail = self.output_tail[-REASON_TAIL:]
        return head + ("\n" + tail if tail else "")


async def run_pre_command(argv: Sequence[str], timeout_s: float) -> PreCommandResult:
    """Run ``argv`` (no shell) in its own process group; on timeout the whole group is
    killed, so an export that forked children does not keep running behind the agent."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return PreCommandResult(returncode=None, output_tail=str(exc))
    tail = bytearray()

    async def collect() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            tail.extend(chunk)
            del tail[: max(0, len(tail) - OUTPUT_TAIL * 4)]

    reader = asyncio.ensure_future(collect())
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), timeout_s)
        await asyncio.wait_for(reader, 5)
        timed_out = False
    except TimeoutError:
        timed_out = True
        platform.kill_tree(proc.pid)
        await proc.wait()
        reader.cancel()
    text = tail.decode("utf-8", "replace")[-OUTPUT_TAIL:]
    return PreCommandResult(returncode=proc.returncode, output_tail=text, timed_out=timed_out)
