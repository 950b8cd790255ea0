"""The monthly report as a PDF: the CSV's rows as a table on A4 landscape pages, for a
partner to file or send to its customers.

Written with pydyf, a pure-Python PDF writer without dependencies (no Pillow: see
``docs/decisions.md``), in the PDF standard font Helvetica with the WinAnsi encoding, so
the file embeds no font and needs nothing from the collector's machine; characters that
encoding lacks print as "?". Every figure of the CSV is in a cell, in the CSV's column
order; the backup compliance as a percentage with one decimal, and the backup policy
overrides, free text, as notes under the table.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pydyf

from collector.contracts.reports import ReportRow

PAGE_W, PAGE_H = 842, 595
"""A4 landscape, in points."""
MARGIN = 36
SIZE = 7.5
"""Table font size (points)."""
LEADING = 12
"""Line distance (points)."""
NOTE_CHARS = 170
"""Characters per line of a note (Helvetica at this size, the page's width)."""


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    cell: Callable[[ReportRow], str]
    right: bool = True


def _num(name: str) -> Callable[[ReportRow], str]:
    return lambda r: str(getattr(r, name))


def _share(r: ReportRow) -> str:
    return "" if r.backup_compliance is None else percent(r.backup_compliance)


def percent(share: float) -> str:
    """A share (0..1) as the report prints it: ``93.3 %``."""
    return f"{share * 100:.1f} %"


COLUMNS = (
    Column("Partner", 56, lambda r: r.partner, right=False),
    Column("Customer", 100, lambda r: r.customer, right=False),
    Column("Servers", 34, _num("servers")),
    Column("Server days", 44, _num("server_days")),
    Column("Days active", 40, _num("days_active")),
    Column("in grace", 36, _num("days_grace")),
    Column("not covered", 40, _num("days_uncovered")),
    Column("Entitle- ments", 40, _num("entitlement_findings")),
    Column("Backups met", 40, _num("backup_slots_met")),
    Column("of slots", 36, _num("backup_slots_total")),
    Column("Backup share", 40, _share),
    Column("Gaps", 30, _num("monitoring_gaps")),
    Column("Gap seconds", 44, _num("monitoring_gap_seconds")),
    Column("Inci- dents", 36, _num("incidents")),
    Column("Response met", 40, _num("response_met")),
    Column("of", 32, _num("response_total")),
    Column("Resolution met", 40, _num("resolution_met")),
    Column("of", 32, _num("resolution_total")),
)
"""The CSV's columns in its order (``collector.contracts.reports.COLUMNS``), but the
overrides, which follow the table as notes."""


def _text(s: str, limit: int | None = None) -> bytes:
    """A PDF string literal in the WinAnsi encoding, cut to ``limit`` characters."""
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    raw = s.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _width(s: str) -> float:
    """Rough width of ``s`` in Helvetica at ``SIZE``: to right-align figures."""
    return len(s) * SIZE * 0.556


class _Pages:
    """Pages of lines, a new page when one is full."""

    def __init__(self, pdf: pydyf.PDF, title: str) -> None:
        self.pdf = pdf
        self.title = title
        self.streams: list[pydyf.Stream] = []
        self.y = 0.0

    def new_page(self) -> None:
        self.streams.append(pydyf.Stream(compress=True))
        self.y = PAGE_H - MARGIN
        self.line(self.title, MARGIN, font="F2", size=12)
        self.y -= 6

    def line(self, text: str, x: float, *, font: str = "F1", size: float = SIZE) -> None:
        s = self.streams[-1]
        s.begin_text()
        s.set_font_size(font, size)
        s.set_text_matrix(1, 0, 0, 1, x, self.y)
        s.show_text(_text(text))
        s.end_text()

    def cells(self, values: Sequence[str], font: str = "F1") -> None:
        if not self.streams or self.y < MARGIN + LEADING:
            self.new_page()
            if font == "F1":
                self.header()
        s = self.streams[-1]
        s.begin_text()
        x = MARGIN
        for col, value in zip(COLUMNS, values, strict=True):
            limit = int(col.width / (SIZE * 0.5))  # names are cut, figures never
            shown = value if col.right or len(value) <= limit else value[: limit - 1] + "…"
            at = x + col.width - 4 - _width(shown) if col.right and font == "F1" else x
            s.set_font_size(font, SIZE)
            s.set_text_matrix(1, 0, 0, 1, at, self.y)
            s.show_text(_text(shown))
            x += col.width
        s.end_text()
        self.y -= LEADING

    def header(self) -> None:
        """Column titles on two lines (their first word, then the rest)."""
        titles = [c.title.partition(" ") for c in COLUMNS]
        self.cells([first for first, _, _ in titles], font="F2")
        self.cells([rest for _, _, rest in titles], font="F2")

    def skip(self, points: float) -> None:
        self.y -= points


def render_pdf(rows: Sequence[ReportRow], month: str, whose: str) -> bytes:
    """The report of ``month`` (``YYYY-MM``) for ``whose`` (a partner's name, or words for
    every partner's) as a PDF document."""
    pdf = pydyf.PDF()
    pdf.info["Title"] = pydyf.String(f"Vigil monthly report {month}: {whose}")
    pdf.info["Producer"] = pydyf.String("Vigil collector")
    pdf.info["CreationDate"] = pydyf.String(time.strftime("D:%Y%m%d%H%M%SZ", time.gmtime()))
    fonts = pydyf.Dictionary()
    for name, base in (("F1", "/Helvetica"), ("F2", "/Helvetica-Bold")):
        font = pydyf.Dictionary(
            {"Type": "/Font", "Subtype": "/Type1", "BaseFont": base, "Encoding": "/WinAnsiEncoding"}
        )
        pdf.add_object(font)
        fonts[name] = font.reference
    pages = _Pages(pdf, f"Monthly report {month}: {whose}")
    pages.new_page()
    pages.header()
    for r in rows:
        pages.cells([c.cell(r) for c in COLUMNS])
    if not rows:
        pages.line("No servers or contracts this month.", MARGIN)
    notes = [(r, r.backup_policy_overrides) for r in rows if r.backup_policy_overrides]
    if notes:
        pages.skip(LEADING)
        pages.line("Backup policies below the contract's promise (overrides):", MARGIN, font="F2")
        pages.skip(LEADING)
        for r, text in notes:
            words = f"{r.partner} / {r.customer}: {text}"
            for start in range(0, len(words), NOTE_CHARS):
                if pages.y < MARGIN + LEADING:
                    pages.new_page()
                pages.line(words[start : start + NOTE_CHARS], MARGIN)
                pages.skip(LEADING)
    _add_pages(pdf, pages.streams, fonts)
    out = io.BytesIO()
    pdf.write(out, compress=True)
    return out.getvalue()


def _add_pages(pdf: pydyf.PDF, streams: list[pydyf.Stream], fonts: pydyf.Dictionary) -> None:
    for stream in streams:
        pdf.add_object(stream)
        page = pydyf.Dictionary(
            {
                "Type": "/Page",
                "Parent": pdf.pages.reference,
                "MediaBox": pydyf.Array([0, 0, PAGE_W, PAGE_H]),
                "Contents": stream.reference,
                "Resources": pydyf.Dictionary({"Font": fonts}),
            }
        )
        pdf.add_page(page)
