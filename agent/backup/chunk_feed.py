"""Upload chunks handed from the archive writer to the streamed upload, in memory.

``ChunkTee`` cuts the archive into upload-sized chunks; each goes to the event loop and
to the archive file (a failed or interrupted upload is sent again, or resumed, from the
file): the streamed upload sends what was just encrypted instead of reading it back.

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
from typing import Protocol

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


class ChunkSink(Protocol):
    def write_chunk(self, offset: int, data: bytearray) -> None: ...


class ChunkTee:
    """A write-only file object cutting what is written into chunks of ``chunk_size``
    (the feed's when there is one): each whole chunk goes to ``feed`` first, then to
    ``out.write_chunk`` (``ArchiveFile``), and is never changed after. ``finish()`` hands
    over the last, shorter chunk."""

    def __init__(self, out: ChunkSink, feed: ChunkFeed | None, chunk_size: int = 0) -> None:
        self._out = out
        self._feed = feed
        self._size = feed.chunk_size if feed is not None else chunk_size
        if self._size <= 0:
            raise ValueError("a chunk size, or a feed that has one")
        self._buf = bytearray(self._size)  # filled in place: never grown, never copied
        self._fill = 0
        self._offset = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        # The feed first, the file after: a chunk is in the feed before the file holds
        # any of it, so the uploader never reads back from the file what the feed brings.
        view = memoryview(data).cast("B")
        n = len(view)
        while view:
            take = min(len(view), self._size - self._fill)
            self._buf[self._fill : self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == self._size:
                self._hand_over(self._buf, last=False)
                self._buf, self._fill = bytearray(self._size), 0
        return n

    def flush(self) -> None:
        """Nothing waits here: whole chunks are handed over as they fill."""

    def finish(self) -> None:
        if self._fill:
            del self._buf[self._fill :]
            self._hand_over(self._buf, last=True)
            self._buf, self._fill = bytearray(), 0
        elif self._feed is not None:
            self._feed.end()

    def _hand_over(self, chunk: bytearray, last: bool) -> None:
        if self._feed is not None:
            self._feed.put(self._offset, chunk, last=last)
        self._out.write_chunk(self._offset, chunk)
        self._offset += len(chunk)
