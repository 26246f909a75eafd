"""A printable PDF case report: what a lab files with a sample, from a LeukoScan per-cell report.

One case (one ``root`` of the rows: one sample) gets its own page(s): header with the sample id and the
sign-off state, the intended-use statement, the verdict table (% blasts with its Wilson 95 % interval), a
P(ALL) histogram with the threshold, the model and its card, thumbnails of the cells a reviewer overrode
and of the flagged ones.  One PDF is one patient: rows of several cases are refused (:class:`SeveralPatients`;
:func:`split_cases` gives each case's rows), so no signature stands under two samples' numbers.

Built with fpdf2 primitives only (no Qt, no matplotlib), written atomically like every other report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf.fonts import FontFace
from fpdf.util import Padding

from .card import ModelCard, sha256_file
from .case.anchor import record_line
from .domain.rules import CaseCounts
from .fileio import atomic_open
from .heldout import plain_words
from .localtime import local_time
from .pdf_cells import cell_thumbnails
from .pdf_doc import RED as _RED
from .pdf_doc import ReportDoc as _Doc
from .report import signoff_check
from .report_cases import CaseReport, ModelUse, cases_of
from .report_row import ReportRow

#: From docs/user_guide.md "Intended use and safety"; printed on every case.
INTENDED_USE = (
    "Intended use: a research and teaching tool for single segmented cells of C-NMC-style smears; not a "
    "diagnostic device: every call is a suggestion for a trained person to review, and the models' accuracy "
    "on new donors is limited (see the model card for what was measured, on which donors)."
)
NOT_SIGNED = "not signed off"
UNKNOWN = "unknown (not in this CSV: print the report from the case store, or keep the summary CSV beside it)"
INTERPRETATION = (
    "Interpretation: % blasts is the share of the classified cells that count as ALL in this sample, with a 95 % "
    "interval for the sampling of cells. It is not a diagnosis, not a bone-marrow blast count and not a measure of "
    "disease burden; a case unlike the donors the model was trained on can be wrong as a whole."
)
BINS = 20

_GREY = (225, 225, 225)
_AMBER = (230, 159, 0)  # the window's review colour (gui.style.REVIEW_COLOR)
_PAD = Padding.new(1.5)  # mm around the intended-use box (fpdf's type hints say int; Padding takes mm)


@dataclass(frozen=True)
class _Meta:
    sample_id: str
    signoff: Mapping[str, Any] | None
    known: bool = True  # False: the source (a per-cell CSV alone) does not say the sample id or the sign-off
    record: tuple[int, str] | None = None  # (rows, head) of the case record's hash chain the report was written from


# ------------------------------------------------------------------------------------------ pieces


def fmt_pct(cc: CaseCounts, short: bool = False) -> str:
    """``"37.5 % (95 % CI 13.7-69.4 %)"`` (``short``: ``"37.5 % (13.7-69.4 %)"``, for a table whose heading
    names the interval); ``"-"`` when no cell counts.  From the case rule (:class:`CaseCounts`) only."""
    pct, ci = cc.pct_blasts, cc.pct_interval
    if pct is None or ci is None:
        return "-"
    return f"{pct:.1f} % ({'' if short else '95 % CI '}{ci[0]:.1f}-{ci[1]:.1f} %)"


def signoff_text(signoff: Mapping[str, Any] | None) -> str:
    if not signoff or not signoff.get("signed_off_by"):
        return NOT_SIGNED
    at = local_time(signoff.get("signed_off_at"))
    text = f"signed off by {signoff['signed_off_by']}" + (f" on {at}" if at else "")
    basis = str(signoff.get("basis") or "").strip()
    text += f" ({basis})" if basis else ""
    comment = str(signoff.get("comment") or "").strip()
    return text + (f' - "{comment}"' if comment else "")


def _key_values(pdf: _Doc, pairs: Iterable[tuple[str, str]], key_w: float = 30) -> None:
    for key, value in pairs:
        pdf.font(9, bold=True)
        pdf.cell(key_w, 5, pdf.t(key))
        pdf.font(9)
        pdf.multi_cell(0, 5, pdf.t(value), new_x="LMARGIN", new_y="NEXT")


def _header(pdf: _Doc, case: CaseReport, meta: _Meta) -> None:
    pdf.font(16, bold=True)
    pdf.cell(0, 9, "LeukoScan case report", new_x="LMARGIN", new_y="NEXT")
    signed = signoff_text(meta.signoff) if meta.known else UNKNOWN
    _key_values(
        pdf,
        [
            ("Sample ID", meta.sample_id or ("not given" if meta.known else UNKNOWN)),
            ("Case folder", case.root or "(unknown)"),
            ("Report date", pdf.generated),
            ("Reviewer(s)", ", ".join(case.reviewers) or "none"),
            ("Last review", local_time(case.last_review) or "-"),
        ],
    )
    pdf.font(9, bold=True)
    pdf.cell(30, 5, "Sign-off")
    if signed in (NOT_SIGNED, UNKNOWN):
        pdf.set_text_color(*_RED)
    pdf.multi_cell(0, 5, pdf.t(signed), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    moved = signoff_check(meta.signoff, case.rows) if signed != NOT_SIGNED else ""
    if moved:
        pdf.font(9, bold=True)
        pdf.set_text_color(*_RED)
        pdf.multi_cell(0, 5, pdf.t(f"SIGN-OFF DOES NOT COVER THIS REPORT: {moved}."), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(2)
    pdf.set_fill_color(255, 246, 214)
    pdf.font(8.5)
    pdf.multi_cell(0, 4.2, pdf.t(INTENDED_USE), border=1, fill=True, padding=_PAD, new_x="LMARGIN", new_y="NEXT")


def _verdict(pdf: _Doc, case: CaseReport) -> None:
    pdf.heading("Verdict", keep=30)
    t, cc = case.total, case.counts
    n = cc.all + cc.hem
    pdf.font(10, bold=True)
    line = f"Blasts (ALL): {fmt_pct(cc)} of {n} classified cells" if n else "Blasts (ALL): no cell could be classified"
    if cc.excluded:
        line += f" ({cc.excluded} excluded, not counted)"
    pdf.multi_cell(0, 6, pdf.t(line), new_x="LMARGIN", new_y="NEXT")
    if cc.pending:
        pdf.set_text_color(*_RED)
        pdf.multi_cell(
            0,
            6,
            pdf.t(
                f"INCOMPLETE: {cc.cells - cc.pending} of {cc.cells} images classified, "
                f"{cc.pending} not classified (the run stopped before them)."
            ),
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0, 0, 0)
    pdf.font(8.5)
    head = ("Folder", "Cells", "ALL", "HEM", "% blasts (95 % CI)", "Review open", "Errors", "QC", "Excluded")
    folders = case.folders if len(case.folders) > 1 else []
    body = []
    for s in folders:
        body.append(
            ("(case folder itself)" if s["folder"] == "." else s["folder"], s, case.folder_counts[s["folder"]], False)
        )
    body.append(("Case total", t, cc, True))
    pdf.set_fill_color(255, 255, 255)
    with pdf.table(
        col_widths=(40, 12, 12, 12, 40, 20, 14, 12, 18),
        text_align=("LEFT", *["RIGHT"] * 3, "LEFT", *["RIGHT"] * 4),
        line_height=5,
        headings_style=FontFace(emphasis="BOLD", fill_color=_GREY),
        first_row_as_headings=True,
    ) as table:
        table.row([pdf.t(h) for h in head])
        for name, _s, counts, bold in body:
            style = FontFace(emphasis="BOLD") if bold else None
            table.row(
                [
                    pdf.t(name),
                    str(counts.cells),
                    str(counts.all),
                    str(counts.hem),
                    pdf.t(fmt_pct(counts, short=True)),
                    str(counts.review_open),
                    str(counts.errors),
                    str(counts.qc),
                    str(counts.excluded),
                ],
                style=style,
            )
    pdf.font(8.5)
    reasons = t.get("error_reasons", "")
    pdf.multi_cell(
        0,
        4.5,
        pdf.t(
            f"{case.qc_flagged} cell(s) failed the input quality check (the score means nothing for a not-a-cell "
            f"image: excluded unless a reviewer labelled it ALL or HEM); {case.unreadable} file(s) could not be read"
            + (f" ({reasons})" if reasons else "")
            + "."
            + (f" Excluded from % blasts: {t.get('excluded_reasons')}." if cc.excluded else "")
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )


def _review_bands(case: CaseReport, cards: Mapping[str, ModelCard]) -> list[tuple[float, float]]:
    """(threshold, review margin) of each model use whose card is the one that classified the cells (the margin is
    the card's: the CSV does not carry it); a use without its card gets no band."""
    bands = []
    for use in case.uses:
        card, _ = _card_for(use, cards.get(use.model))
        try:
            t = float(use.threshold)
        except ValueError:
            continue
        if card is not None and (t, float(card.review_margin)) not in bands:
            bands.append((t, float(card.review_margin)))
    return bands


def _histogram(pdf: _Doc, case: CaseReport, cards: Mapping[str, ModelCard] | None = None) -> None:
    """The P(ALL) histogram with each threshold and, as in the window's, the review band around it (amber)."""
    h, w = 38.0, 130.0
    pdf.heading(f"P(ALL) of the classified cells ({BINS} bins)", keep=h + 12)
    x0, y0 = pdf.l_margin + 10, pdf.get_y() + 2
    bands = _review_bands(case, cards or {})
    with pdf.local_context(fill_opacity=0.35):
        pdf.set_fill_color(*_AMBER)
        for t, m in bands:
            lo, hi = max(0.0, t - m), min(1.0, t + m)
            pdf.rect(x0 + lo * w, y0, (hi - lo) * w, h, style="F")
    counts = [0] * BINS
    for p in case.p_all:
        counts[min(BINS - 1, max(0, int(p * BINS)))] += 1
    top = max(counts) if any(counts) else 1
    bw = w / BINS
    pdf.set_fill_color(120, 140, 170)
    for i, c in enumerate(counts):
        if c:
            bh = h * c / top
            pdf.rect(x0 + i * bw + 0.3, y0 + h - bh, bw - 0.6, bh, style="F")
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.25)
    pdf.line(x0, y0 + h, x0 + w, y0 + h)
    pdf.line(x0, y0, x0, y0 + h)
    pdf.font(7)
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = x0 + tick * w
        pdf.line(x, y0 + h, x, y0 + h + 1)
        pdf.text(x - 2.5, y0 + h + 4, f"{tick:g}")
    pdf.text(x0 - 7, y0 + 2.5, str(top))
    pdf.text(x0 - 3, y0 + h, "0")
    pdf.text(x0 + w / 2 - 8, y0 + h + 8, "P(ALL) per cell")
    if bands:
        pdf.set_fill_color(*_AMBER)
        with pdf.local_context(fill_opacity=0.35):
            pdf.rect(x0 + w + 3, y0 + h - 3, 3, 3, style="F")
        pdf.text(x0 + w + 7.5, y0 + h - 0.6, "review band")
        for j, (t, m) in enumerate(bands):
            pdf.text(x0 + w + 3, y0 + h - 5 - 3.5 * j, f"{t:g} ± {m:g}: flagged")
    _threshold_lines(pdf, case, x0, y0, w, h)
    if not case.p_all:
        pdf.font(9)
        pdf.text(x0 + 30, y0 + h / 2, "no classified cells")
    pdf.set_xy(pdf.l_margin, y0 + h + 10)


def _threshold_lines(pdf: _Doc, case: CaseReport, x0: float, y0: float, w: float, h: float) -> None:
    """Each threshold the case's cells were decided at, as a dashed red line across the histogram."""
    for j, thr in enumerate(sorted({u.threshold for u in case.uses})):
        try:
            t = float(thr)
        except ValueError:
            continue
        x = x0 + t * w
        pdf.set_draw_color(*_RED)
        pdf.set_dash_pattern(dash=1.2, gap=0.8)
        pdf.line(x, y0 - 1, x, y0 + h)
        pdf.set_dash_pattern()
        pdf.set_text_color(*_RED)
        pdf.text(x + 1, y0 + 2 + 3.5 * j, f"threshold {t:.4f}")
        pdf.set_text_color(0, 0, 0)
    pdf.set_draw_color(0, 0, 0)


def _card_for(use: ModelUse, card: ModelCard | None) -> tuple[ModelCard | None, str]:
    """The card that describes ``use``, or why none is shown."""
    if card is None or card.name != use.model:
        return None, "model card not found: its facts are not shown"
    if card.version and use.version and card.version != use.version:
        return None, (
            f"the installed card of {card.name} is version {card.version}, the report's cells were "
            f"classified with version {use.version}: its facts are not shown"
        )
    return card, ""


def _model(pdf: _Doc, case: CaseReport, cards: Mapping[str, ModelCard]) -> None:
    pdf.heading("Model", keep=25)
    if not case.uses:
        pdf.multi_cell(0, 5, "No cell was classified: no model to report.", new_x="LMARGIN", new_y="NEXT")
        return
    for use in case.uses:
        card, why = _card_for(use, cards.get(use.model))
        name = f"{card.display_name} ({use.model})" if card and card.display_name != use.model else use.model
        changed = "" if use.threshold == use.default_threshold else " (set by the user, not the card's)"
        pairs = [
            (
                "Model",
                f"{name}, version {use.version or '?'}" + (f" - {use.cells} cells" if len(case.uses) > 1 else ""),
            ),
            ("Threshold", f"{use.threshold} used{changed}; card default {use.default_threshold or '?'}"),
            ("Run on", use.provider or "?"),
        ]
        _key_values(pdf, pairs)
        if card is None:
            _key_values(pdf, [("Model card", why)])
            continue
        shas = []
        if card.path.is_file():
            shas.append(("Card sha256", sha256_file(card.path)))
        if card.sha256:
            shas.append(("ONNX sha256", card.sha256))
        for key, value in shas:
            pdf.font(9, bold=True)
            pdf.cell(30, 5, key)
            pdf.font(7.5, mono=True)
            pdf.cell(0, 5, value, new_x="LMARGIN", new_y="NEXT")
        words = plain_words((card.metrics or {}).get("held_out"))
        _key_values(pdf, [("Held-out test", " ".join(words) if words else "the card has no held-out results")])


def _case_pages(pdf: _Doc, case: CaseReport, meta: _Meta, cards: Mapping[str, ModelCard], new_page: bool = True) -> int:
    """Lay out one case from the top of a page; returns the number of its first page."""
    if new_page:
        pdf.add_page()
    first = pdf.page_no()
    _header(pdf, case, meta)
    _verdict(pdf, case)
    _histogram(pdf, case, cards)
    _model(pdf, case, cards)
    cell_thumbnails(
        pdf,
        "Every cell counted as ALL (caption: cell id, P(ALL); model call > final call, who confirmed)",
        case.blasts,
        cap=None,
    )
    cell_thumbnails(pdf, "Cells the reviewer overrode", case.overridden)
    cell_thumbnails(pdf, "Cells excluded from % blasts (not a cell, artefact, failed quality check ...)", case.excluded)
    cell_thumbnails(pdf, "Cells flagged for review (reviewed or not)", case.flagged)
    _signature(pdf, meta)
    return first


def _signature(pdf: _Doc, meta: _Meta) -> None:
    pdf.need(22)
    pdf.ln(3)
    pdf.font(8.5)
    pdf.multi_cell(0, 4.2, pdf.t(INTERPRETATION), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.font(9, bold=True)
    so = meta.signoff or {}
    if so.get("signed_off_by"):
        line = f"Reviewed by {so['signed_off_by']}, signed {local_time(so.get('signed_off_at'))}"
    else:
        line = "Reviewed by ______________________   signed ______________________   " + (
            "(not signed off)" if meta.known else "(sign-off unknown: not in this CSV)"
        )
    pdf.multi_cell(0, 5, pdf.t(line), new_x="LMARGIN", new_y="NEXT")
    pdf.font(9)
    if meta.record is not None:  # the anchor of the record: leukoscan-cli verify STORE --report THIS.pdf
        pdf.font(7, mono=True)
        pdf.multi_cell(0, 3.6, pdf.t(record_line(*meta.record)), new_x="LMARGIN", new_y="NEXT")
        pdf.font(9)


class SeveralPatients(ValueError):
    """The rows hold more than one case: one PDF is one patient (print each case alone: :func:`split_cases`)."""


def split_cases(rows: Iterable[ReportRow]) -> dict[str, list[ReportRow]]:
    """root -> its rows, in first-seen order: what to print one PDF each of."""
    out: dict[str, list[ReportRow]] = {}
    for r in rows:
        out.setdefault(r.root, []).append(r)
    return out


# ------------------------------------------------------------------------------------------ API


def _cards_by_name(card) -> dict[str, ModelCard]:
    if card is None:
        return {}
    if isinstance(card, ModelCard):
        return {card.name: card}
    return {str(k): v for k, v in dict(card).items() if v is not None}


def render_case_pdf(
    rows: Iterable[ReportRow],
    *,
    signoffs: Mapping[str, Mapping[str, Any]] | None = None,
    sample_ids: Mapping[str, str] | None = None,
    card=None,
    generated_at: datetime | None = None,
    fonts_found=None,
    search_fonts: bool = True,
    record_known: bool = True,
    record: tuple[int, str] | None = None,
) -> bytes:
    """The PDF document's bytes (see :func:`write_case_pdf`).  ``record_known`` False: the source does not say
    the sample ids and sign-offs (a per-cell CSV without its summary): the PDF says "unknown (not in this CSV)"
    rather than asserting "not signed off" or "not given".  ``record``: (rows, head) of the case record's hash chain,
    printed under the signature and kept in the PDF's keywords (:mod:`engine.case.anchor`)."""
    known = record_known
    cases = cases_of(rows)
    if not cases:
        raise ValueError("the report has no rows: nothing to print")
    if len(cases) > 1:  # a signature under two patients' numbers could be read as either's
        ids = {str(k): str(v) for k, v in (sample_ids or {}).items()}
        named = ", ".join(f"{ids.get(c.root) or 'no sample id'} ({c.root})" for c in cases)
        raise SeveralPatients(f"one PDF is one patient: these rows hold {len(cases)} cases ({named}); print each alone")
    signoffs = {str(k): v for k, v in (signoffs or {}).items()}
    sample_ids = {str(k): str(v) for k, v in (sample_ids or {}).items()}
    cards = _cards_by_name(card)
    when = local_time(generated_at or datetime.now().astimezone())
    pdf = _Doc(when, fonts_found, search_fonts)
    if record is not None:
        pdf.set_keywords(record_line(*record))
    (case,) = cases
    _case_pages(pdf, case, _Meta(sample_ids.get(case.root, ""), signoffs.get(case.root), known, record), cards)
    return bytes(pdf.output())


def write_case_pdf(
    path: str | Path,
    rows: Iterable[ReportRow],
    *,
    signoffs: Mapping[str, Mapping[str, Any]] | None = None,
    sample_ids: Mapping[str, str] | None = None,
    card=None,
    generated_at: datetime | None = None,
    record_known: bool = True,
    record: tuple[int, str] | None = None,
) -> Path:
    """Write the case report of ``rows`` (typed per-cell rows: :func:`engine.report.cell_row`, or a report read back
    by :func:`engine.report.read_cell_report`).

    ``signoffs`` and ``sample_ids`` are keyed by case root (the rows' ``root``); a signoff is a dict with
    ``signed_off_by``, ``signed_off_at`` (str or datetime) and ``comment``; a case without one prints "not
    signed off".  ``card``: a :class:`ModelCard` or a mapping name -> card; a case's model facts are shown only
    from the card of the rows' ``model`` (and version).  The file is replaced atomically.  Returns the path.
    """
    data = render_case_pdf(
        rows,
        signoffs=signoffs,
        sample_ids=sample_ids,
        card=card,
        generated_at=generated_at,
        record_known=record_known,
        record=record,
    )
    with atomic_open(path, public=True, mode="wb") as fh:  # a report: ordinary permissions, like the CSVs
        fh.write(data)
    return Path(path)
