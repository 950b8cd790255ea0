"""The monthly report as PDF: a document any reader parses (pypdf here), whose table holds
every figure of the CSV of the same rows, row by row in the CSV's column order, across as
many pages as the rows need."""

from __future__ import annotations

import csv
import io

import pypdf
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.contracts.report_pdf import percent, render_pdf
from collector.contracts.reports import ReportRow, render_csv


def pdf_words(pdf: bytes) -> list[str]:
    """The words of every page, in reading order."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return " ".join(p.extract_text() for p in reader.pages).split()


def csv_cells(text: str) -> list[list[str]]:
    """Each CSV row's cells as the PDF prints them (the overrides are notes, apart)."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        share = row["backup_compliance"]
        out.append(
            [
                row["partner"],
                row["customer"],
                row["servers"],
                row["server_days"],
                row["days_active"],
                row["days_grace"],
                row["days_uncovered"],
                row["entitlement_findings"],
                row["backup_slots_met"],
                row["backup_slots_total"],
                *([percent(float(share))] if share else []),
                row["monitoring_gaps"],
                row["monitoring_gap_seconds"],
                row["incidents"],
                row["response_met"],
                row["response_total"],
                row["resolution_met"],
                row["resolution_total"],
            ]
        )
    return out


def contains_in_order(words: list[str], cells: list[str]) -> bool:
    """``cells`` (split into words) appear in ``words`` one after the other."""
    wanted = " ".join(cells).split()
    n = len(wanted)
    return any(words[i : i + n] == wanted for i in range(len(words) - n + 1))


names = (
    st.text(
        alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzÄÖÜäöüß ()\\-&"),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(bool)
)
counts = st.integers(min_value=0, max_value=10**6)
rows = st.builds(
    ReportRow,
    month=st.just("2026-11"),
    partner=st.sampled_from(["acme", "rival"]),
    customer=names,
    servers=counts,
    server_days=counts,
    days_active=counts,
    days_grace=counts,
    days_uncovered=counts,
    entitlement_findings=counts,
    backup_slots_met=counts,
    backup_slots_total=counts,
    backup_compliance=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
    monitoring_gaps=counts,
    monitoring_gap_seconds=counts,
    incidents=counts,
    response_met=counts,
    response_total=counts,
    resolution_met=counts,
    resolution_total=counts,
    backup_policy_overrides=st.sampled_from(["", "srv_1: a test bench (breaks: interval)"]),
)


@settings(max_examples=25, deadline=None)
@given(report=st.lists(rows, max_size=70))
def test_the_pdf_holds_every_figure_of_the_csv(report: list[ReportRow]) -> None:
    pdf = render_pdf(report, "2026-11", "acme")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert reader.metadata is not None and reader.metadata.title == (
        "Vigil monthly report 2026-11: acme"
    )
    words = pdf_words(pdf)
    for cells in csv_cells(render_csv(report)):
        assert contains_in_order(words, cells), cells
    assert len(reader.pages) >= 1 + len(report) // 45
    if any(r.backup_policy_overrides for r in report):
        assert contains_in_order(words, ["a test bench (breaks: interval)"])


def test_an_empty_month_is_a_one_page_pdf_that_says_so() -> None:
    pdf = render_pdf([], "2026-11", "every partner")
    assert len(pypdf.PdfReader(io.BytesIO(pdf)).pages) == 1
    assert contains_in_order(pdf_words(pdf), ["No servers or contracts this month."])
