"""Upload chunks handed from the archive writer to the streamed upload, in memory.

The writer thread still writes every byte to the archive file (a failed or interrupted
upload is sent again, or resumed, from it), and ``ChunkTee`` also cuts the same bytes
into upload-sized chunks and passes them to the event loop: the streamed upload sends
what was just encrypted instead of reading it back from the file.

Memory is bounded: at most ``depth`` chunks wait, then the writer waits for the upload
(the upload is the slower side; waiting costs no work, reading back later would). A
consumer that gives up calls ``detach()`` and the writer never waits again. Whatever the
uploader does not find here (it resumes at another offset, the collector moved the
offset) it reads from the file, as before.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import BinaryIO

DEPTH = 1
"""Chunks that may wait for the uploader, beside the one being filled and the one being
sent (three 8 MiB chunks at most)."""


class ChunkFeed:
    """Producer: ``put`` from the writer thread. Consumer: ``take`` on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, chunk_size: int, depth: int = DEPTH):
        self.chunk_size = chunk_size
        self._loop = loop
        self._slots = threading.Semaphore(depth)
        self._items: collections.deque[tuple[int, bytearray]] = collections.deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._detached = False
        self.ended = False
        """Set with the last chunk: no more will come."""

    # --- the writer's thread ------------------------------------------------------------

    def put(self, offset: int, data: bytearray, last: bool = False) -> None:
        """Hand over the chunk at ``offset`` (waits while ``depth`` chunks wait)."""
        while not self._slots.acquire(timeout=0.5):
            if self._detached:
                return
        with self._lock:
            if self._detached:
                self._slots.release()
                return
            self._items.append((offset, data))
            if last:
                self.ended = True
        self._loop.call_soon_threadsafe(self._ready.set)

    def end(self) -> None:
        with self._lock:
            self.ended = True
        self._loop.call_soon_threadsafe(self._ready.set)

    # --- the event loop -----------------------------------------------------------------

    async def take(self, offset: int, wait_s: float) -> bytearray | None:
        """The chunk starting at ``offset``; None when it is not (or not yet, after
        ``wait_s`` seconds) here: the caller reads that part from the file."""
        while True:
            self._ready.clear()
            with self._lock:
                while self._items and self._items[0][0] < offset:
                    self._items.popleft()
                    self._slots.release()
                if self._items:
                    at, data = self._items[0]
                    if at != offset:
                        return None
                    self._items.popleft()
                    self._slots.release()
                    return data
                if self.ended:
                    return None
            try:
                await asyncio.wait_for(self._ready.wait(), wait_s)
            except TimeoutError:
                return None

    def detach(self) -> None:
        """The uploader stops taking chunks: drop what waits; the writer never waits."""
        with self._lock:
            self._detached = True
            while self._items:
                self._items.popleft()
                self._slots.release()


class ChunkTee:
    """A write-only file object: writes go to ``out`` and, cut into the feed's chunk
    size, to ``feed``. ``finish()`` hands over the last, shorter chunk."""

    def __init__(self, out: BinaryIO, feed: ChunkFeed) -> None:
        self._out = out
        self._feed = feed
        self._size = feed.chunk_size
        self._buf = bytearray(self._size)  # filled in place: never grown, never copied
        self._fill = 0
        self._offset = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        # The feed first, the file after: a chunk is in the feed before the file holds
        # all of it, so the uploader never reads back from the file what the feed brings.
        view = memoryview(data).cast("B")
        while view:
            take = min(len(view), self._size - self._fill)
            self._buf[self._fill : self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == self._size:
                self._feed.put(self._offset, self._buf)
                self._offset += self._size
                self._buf, self._fill = bytearray(self._size), 0
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()

    def finish(self) -> None:
        if self._fill:
            del self._buf[self._fill :]
            self._feed.put(self._offset, self._buf, last=True)
            self._offset += self._fill
            self._buf, self._fill = bytearray(), 0
        else:
            self._feed.end()
