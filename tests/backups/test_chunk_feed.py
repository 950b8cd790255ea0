"""The streamed upload's chunks come from the archive writer in memory: what the feed
hands over is byte for byte what went to the file, cut at the chunk size; an uploader
that gives up never leaves the writer waiting."""

from __future__ import annotations

import asyncio
import io
import os
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.backup.chunk_feed import ChunkFeed, ChunkTee


class _File(io.BytesIO):
    """The archive file's part here: whole chunks, in order."""

    def write_chunk(self, offset: int, data: bytearray) -> None:
        assert offset == self.tell()
        self.write(data)


async def _collect(writes: list[bytes], chunk: int) -> tuple[bytes, list[tuple[int, bytes]]]:
    feed = ChunkFeed(asyncio.get_running_loop(), chunk)
    out = _File()

    def writer() -> None:
        tee = ChunkTee(out, feed)
        for w in writes:
            tee.write(w)
        tee.finish()

    thread = threading.Thread(target=writer)
    thread.start()
    got: list[tuple[int, bytes]] = []
    offset = 0
    while True:
        data = await feed.take(offset, 5.0)
        if data is None:
            break
        got.append((offset, bytes(data)))
        offset += len(data)
    thread.join()
    return out.getvalue(), got


@settings(max_examples=40, deadline=None)
@given(
    writes=st.lists(st.binary(min_size=0, max_size=300), max_size=30),
    chunk=st.integers(min_value=1, max_value=257),
)
def test_chunks_are_the_file_cut_at_the_chunk_size(writes: list[bytes], chunk: int) -> None:
    written, got = asyncio.run(_collect(writes, chunk))
    assert b"".join(w for w in writes) == written
    assert b"".join(d for _, d in got) == written
    assert all(len(d) == chunk for _, d in got[:-1])
    assert [o for o, _ in got] == list(range(0, len(got) * chunk, chunk))


def test_an_offset_not_in_the_feed_is_read_from_the_file_and_detach_frees_the_writer() -> None:
    async def go() -> None:
        feed = ChunkFeed(asyncio.get_running_loop(), 4, depth=1)
        tee = ChunkTee(_File(), feed)
        wrote = threading.Event()

        def writer() -> None:
            tee.write(os.urandom(4 * 8))  # eight chunks, room for one: waits
            tee.finish()
            wrote.set()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        assert await feed.take(0, 5.0) is not None
        assert await feed.take(0, 5.0) is None  # offset 4 is next: the caller reads the file
        assert await feed.take(12, 5.0) is not None  # those before it are dropped
        assert not wrote.is_set()
        feed.detach()
        await asyncio.to_thread(wrote.wait, 10)
        assert wrote.is_set()

    asyncio.run(go())


class _Watched(_File):
    """The archive file: after every chunk, its size and what the feed had by then."""

    def __init__(self, feed: ChunkFeed) -> None:
        super().__init__()
        self.feed = feed
        self.seen: list[tuple[int, int]] = []

    def write_chunk(self, offset: int, data: bytearray) -> None:
        super().write_chunk(offset, data)
        self.seen.append((self.tell(), sum(len(d) for _, d in self.feed._items)))


def test_a_chunk_is_in_the_feed_before_the_file_holds_all_of_it() -> None:
    """The uploader reads from the file a chunk the file holds whole and the feed does
    not: had the file got the bytes first, the uploader could read back (and hold) a
    chunk the feed was about to bring."""

    async def run() -> list[tuple[int, int]]:
        feed = ChunkFeed(asyncio.get_running_loop(), 1000, depth=100)
        out = _Watched(feed)
        tee = ChunkTee(out, feed)
        for _ in range(30):
            tee.write(os.urandom(300))
        tee.finish()
        return out.seen

    for at, handed in asyncio.run(run()):
        assert handed >= at // 1000 * 1000  # every whole chunk the file holds is in the feed


def test_without_a_feed_the_file_still_gets_whole_chunks() -> None:
    """A collector that takes no streamed upload: the archive file alone, cut the same."""
    out = _File()
    tee = ChunkTee(out, None, 1000)
    writes = [os.urandom(n) for n in (1, 999, 1000, 1, 2500, 0, 7)]
    for w in writes:
        assert tee.write(w) == len(w)
    tee.finish()
    assert out.getvalue() == b"".join(writes)
