"""The monthly report as a PDF a partner can hand to its customer: per customer, the
figures of the report's row (coverage days, backup slots, monitoring gaps, incidents and
their clocks), then the servers counted and the incidents opened in the month.

The figures are the rows :func:`collector.contracts.views.build_report` computes, the same
as the page, the CSV and the JSON API; this module only lays them out (ReportLab, pure
Python; imported when a PDF is asked for, so the collector does not load it otherwise).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from collector.contracts.reports import ReportRow

SUMMARY = (
    ("Servers", "servers"),
    ("Server days", "server_days"),
    ("Days covered (active)", "days_active"),
    ("Days in grace", "days_grace"),
    ("Days not covered", "days_uncovered"),
    ("Entitlement findings", "entitlement_findings"),
    ("Backup slots met", "backup_slots_met"),
    ("Backup slots", "backup_slots_total"),
    ("Monitoring gaps", "monitoring_gaps"),
    ("Monitoring gap seconds", "monitoring_gap_seconds"),
    ("Incidents opened", "incidents"),
    ("Response times met", "response_met"),
    ("Response clocks decided", "response_total"),
    ("Resolution times met", "resolution_met"),
    ("Resolution clocks decided", "resolution_total"),
)
"""(label, ReportRow field) of each customer's summary table."""


def render_pdf(rows: Sequence[ReportRow], month: str, partner: str) -> bytes:
    """The report of ``partner`` for ``month`` (``YYYY-MM``) as PDF bytes."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        title=f"Monthly report {month}",
        author=partner,
        leftMargin=40,
        rightMargin=40,
        topMargin=40,
        bottomMargin=40,
    )
    story: list[Any] = []
    for i, row in enumerate(rows):
        if i:
            story.append(PageBreak())
        story.append(Paragraph(_text(f"Monthly report {month}"), styles["Title"]))
        story.append(
            Paragraph(
                _text(f"Customer: {row.customer or '(all)'} · partner: {row.partner}"),
                styles["Heading2"],
            )
        )
        story.append(_table([[label, _figure(getattr(row, name))] for label, name in SUMMARY]))
        compliance = "—" if row.backup_compliance is None else f"{row.backup_compliance:.2%}"
        story.append(Paragraph(_text(f"Backup compliance: {compliance}"), styles["Normal"]))
        if row.backup_policy_overrides:
            story.append(
                Paragraph(
                    _text(f"Backup policies below the promise: {row.backup_policy_overrides}"),
                    styles["Normal"],
                )
            )
        story.extend(_servers(row, styles))
        story.extend(_incidents(row, styles))
    if not rows:
        story.append(Paragraph(_text(f"Monthly report {month}"), styles["Title"]))
        story.append(Paragraph("No servers or incidents to report.", styles["Normal"]))
    story.append(Spacer(1, 6))
    doc.build(story)
    return buf.getvalue()


def _servers(row: ReportRow, styles: Any) -> list[Any]:
    from reportlab.platypus import Paragraph

    if not row.server_details:
        return []
    head = ["Server", "Contract", "Plan", "Counted from", "Active", "Grace", "Not covered"]
    head.append("Backup slots")
    body = [
        [
            str(d.get("server_id", "")),
            str(d.get("contract_id", "")),
            str(d.get("plan", "")),
            str(d.get("counted_from", "")),
            _figure(d.get("days_active")),
            _figure(d.get("days_grace")),
            _figure(d.get("days_uncovered")),
            f"{_figure(d.get('backup_slots_met'))} / {_figure(d.get('backup_slots_total'))}",
        ]
        for d in row.server_details
    ]
    return [Paragraph("Servers", styles["Heading3"]), _table([head, *body], header=True)]


def _incidents(row: ReportRow, styles: Any) -> list[Any]:
    from reportlab.platypus import Paragraph

    if not row.incident_details:
        return []
    head = ["Incident", "Server", "Priority", "Opened", "State", "Response", "Resolution"]
    body = [
        [
            str(d.get("id", "")),
            str(d.get("server_id") or ""),
            str(d.get("priority", "")),
            str(d.get("opened_at", ""))[:16].replace("T", " "),
            str(d.get("state", "")),
            _kept(d.get("response")),
            _kept(d.get("resolution")),
        ]
        for d in row.incident_details
    ]
    return [
        Paragraph("Incidents opened in the month", styles["Heading3"]),
        _table([head, *body], header=True),
    ]


def _kept(clock: Any) -> str:
    if not isinstance(clock, dict) or clock.get("kept") is None:
        return "open"
    return "kept" if clock["kept"] else "missed"


def _table(data: list[list[str]], header: bool = False) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table

    t = Table(data, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 8),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    if header:
        style += [
            ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ]
    t.setStyle(style)
    return t


def _figure(value: Any) -> str:
    return "—" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _text(s: str) -> str:
    """Plain text for a ReportLab paragraph (which reads a little markup)."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
