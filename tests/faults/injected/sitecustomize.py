"""Faults injected into real ``vigil-agent`` / ``vigil-collector`` processes by the fault
tests: this directory goes on ``PYTHONPATH`` of those processes only, and each fault is
switched on by an environment variable. Nothing here is part of the product.

- ``VIGIL_FAULT_CLOCK_SHIFT_S``: the process's ``time.time()`` runs this many seconds
  ahead (negative: behind), as on a server whose clock is wrong.
- ``VIGIL_FAULT_SEND_RAISES``: the agent's send loop raises an unexpected exception, this
  many times (``always``: every time), as a bug would.
"""

import os

_shift = os.environ.get("VIGIL_FAULT_CLOCK_SHIFT_S")
if _shift:
    import time

    _real_time = time.time

    def _shifted() -> float:
        return _real_time() + float(_shift)

    time.time = _shifted

_raises = os.environ.get("VIGIL_FAULT_SEND_RAISES")
if _raises:
    from agent import sender as _sender

    _left = [float("inf") if _raises == "always" else int(_raises)]
    _real_send = _sender.Sender.send_pending

    async def _send_pending(self, limit_batches=None):  # type: ignore[no-untyped-def]
        if _left[0] > 0:
            _left[0] -= 1
            raise RuntimeError("injected fault in the send loop")
        return await _real_send(self, limit_batches)

    _sender.Sender.send_pending = _send_pending
