"""The manifest read one entry at a time, as it streams out of the tar member.

Decoded whole, the manifest of 200,000 files is about 50 MB of JSON and 100 MB of structs
held at once. The writer (``msgspec`` encoding ``Manifest``) puts ``entries`` last and
writes each entry compactly with ``path`` first, so the stream reads
``{"version":…,"content_digest":"…","entries":[{"path":…},{"path":…}]}``: the head
decodes on its own (with ``]}`` added), and the entries are cut at ``},{"path":``. That
sequence cannot occur inside a JSON string (a string holds no bare ``"``) nor anywhere
else in a version 1 manifest, whose entries hold no nested objects; every piece is then
decoded and validated as one ``ManifestEntry``.

A manifest laid out otherwise is decoded whole, as before: one whose other fields do not
all come before ``entries``, or whose entries give no piece to cut (another writer's key
order, whitespace). Any valid version 1 manifest is read. Memory is two read blocks and
one entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import msgspec

from protocol.backup_archive import AgeError, Manifest, ManifestEntry, decode_manifest
from recovery.refused import ArchiveRefused

_ENTRIES = b'"entries":['
_CUT = b'},{"path":'
HEAD_LIMIT = 64 * 1024
"""The head (version, times, server, digest) is a few hundred bytes."""
_entry = msgspec.json.Decoder(ManifestEntry)
_HEAD_FIELDS = set(Manifest.__struct_fields__)


class StreamedManifest:
    """``head`` (the manifest without its entries), then ``entries()`` once, in order.

    ``read(n)`` returns the next at most ``n`` bytes of the member (``b""`` at its end)."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self._read = read
        buf = b""
        while (found := buf.find(_ENTRIES)) < 0 and len(buf) < HEAD_LIMIT:
            more = read()
            if not more:
                break
            buf += more
        self.streamed = False
        """Whether the entries were cut one by one (False: decoded whole)."""
        self._whole: Manifest | None = None
        self._head_bytes = b""
        self._rest = buf
        if found >= 0:
            end = found + len(_ENTRIES)
            try:
                head = buf[:end] + b"]}"
                # every other field before the entries, as the writer puts them: then
                # nothing but "]}" may follow them (another layout is decoded whole)
                if set(msgspec.json.decode(head)) >= _HEAD_FIELDS:
                    self.head = decode_manifest(head)
                    self._head_bytes, self._rest = buf[:end], buf[end:]
                    return
            except (AgeError, msgspec.MsgspecError, TypeError):
                pass  # decoded whole below, which says what is wrong
        self._whole = self._decode_whole(buf)
        self.head = msgspec.structs.replace(self._whole, entries=[])

    def _decode_whole(self, data: bytes) -> Manifest:
        while more := self._read():
            data += more
        return decode_manifest(data)

    def entries(self) -> Iterator[ManifestEntry]:
        if self._whole is not None:
            yield from self._whole.entries
            self._whole = None
            return
        buf, pos, ended = self._rest, 0, False
        self._rest = b""
        while True:
            cut = buf.find(_CUT, pos)
            if cut >= 0:
                yield self._decode(buf[pos : cut + 1])
                self.streamed = True
                pos = cut + 2
                continue
            if not ended:
                more = self._read()
                if more:
                    buf = buf[pos:] + more
                    pos = 0
                    continue
                ended = True
            break
        yield from self._last(buf[pos:])

    def _last(self, tail: bytes) -> Iterator[ManifestEntry]:
        """The last entry and the closing ``]}``; without any cut made, the whole
        manifest decoded as one (any layout)."""
        tail = tail.rstrip()
        if not self.streamed:
            whole = decode_manifest(self._head_bytes + tail)
            yield from whole.entries
            return
        if not tail.endswith(b"]}"):
            raise ArchiveRefused("malformed backup manifest: it does not end with ']}'")
        yield self._decode(tail[:-2])

    @staticmethod
    def _decode(piece: bytes) -> ManifestEntry:
        try:
            return _entry.decode(piece)
        except msgspec.MsgspecError as exc:
            raise ArchiveRefused(f"malformed backup manifest: {exc}") from None
