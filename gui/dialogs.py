"""Model card viewer, settings and About dialogs."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
)

from .card_view import ModelCardView
from .service import plain_words
from .settings import DEVICES, PRECISIONS, Settings

NOT_A_DEVICE = (
    "LeukoScan is a <b>research tool, not a diagnostic device</b>. It has not been cleared or "
    "approved for clinical use. Every result must be reviewed by a qualified person and must not "
    "be used on its own to diagnose or treat a patient."
)


def _value_html(v: Any, depth: int = 0) -> str:
    if isinstance(v, dict):
        if not v:
            return "<i>none</i>"
        items = "".join(f"<li><b>{escape(str(k))}</b>: {_value_html(x, depth + 1)}</li>" for k, x in v.items())
        return f"<ul style='margin-top:0'>{items}</ul>"
    if isinstance(v, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in v):
            return escape(", ".join(str(x) for x in v))
        return "<ul>" + "".join(f"<li>{_value_html(x, depth + 1)}</li>" for x in v) + "</ul>"
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v))


def card_facts_html(card, active=None) -> str:
    """The card's identity and operating point as an HTML table (``active``: the loaded Classifier, optional)."""
    rows: list[tuple[str, str]] = [
        ("Name", f"{escape(card.display_name)} <span style='color:gray'>({escape(card.name)})</span>"),
        ("Type", "ensemble of " + escape(", ".join(card.members)) if card.is_ensemble else escape(card.architecture)),
        ("Version", escape(card.version)),
        ("Created", escape(card.created)),
        ("Decision threshold", f"{card.threshold:.3f} on calibrated P(ALL)"),
        ("Review margin", f"±{card.review_margin:.3f} around the threshold"),
    ]
    if not card.is_ensemble:
        pre = card.preprocessing
        rows += [
            (
                "Input",
                f"{pre.height}x{pre.width} RGB, "
                + (
                    f"a {pre.window_px}-pixel window centred on the cell"
                    if pre.crop_mode == "centroid"
                    else f"centre crop {pre.crop_fraction:g}"
                )
                + f", {escape(pre.resize_filter)}",
            ),
            ("Calibration", f"temperature {card.temperature:.3g}"),
            (
                "Test-time views",
                "the cell as it is"
                if card.tta_views == (0,)
                else f"mean over {len(card.tta_views)} rotations/mirrors of each cell (views {', '.join(map(str, card.tta_views))})",
            ),
            ("ONNX file", f"{escape(card.onnx_file.name)} (sha256 {escape((card.sha256 or '')[:16])}…)"),
        ]
    if active is not None and getattr(active, "name", None) == card.name:
        rows.append(("Running on", escape(getattr(active, "device_label", "?"))))
    rows.append(("Card file", escape(str(card.path))))
    html = ["<h2>" + escape(card.display_name) + "</h2>", "<table cellspacing=4>"]
    html += [f"<tr><td valign=top><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows]
    html.append("</table>")
    return "".join(html)


def card_html(card, active=None) -> str:
    """A model card as HTML (``active``: the loaded Classifier for provider info, optional)."""
    html = [card_facts_html(card, active)]
    words = plain_words((card.metrics or {}).get("held_out"))
    if words:  # the honest held-out numbers first, in plain words; the full JSON follows
        html.append("<h3>On donors it never saw</h3>" + "".join(f"<p>{escape(w)}</p>" for w in words))
    html.append("<h3>Validation metrics</h3>" + _value_html(card.metrics))
    html.append("<h3>Training provenance</h3>" + _value_html(card.training))
    if card.notes:
        html.append("<h3>Notes</h3><p>" + escape(card.notes) + "</p>")
    return "".join(html)


class ModelInfoDialog(QDialog):
    """Help > Model card: the facts, the held-out numbers in words and as charts (gui.card_view), the raw card
    behind Details.  ``cards``: the installed cards (an ensemble's members are looked up in them), passed in."""

    def __init__(self, card, cards: Iterable[Any], active=None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card — {card.display_name}")
        self.resize(1180, 720)
        lay = QVBoxLayout(self)
        self.view = ModelCardView(card, card_facts_html(card, active), list(cards))
        lay.addWidget(self.view)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(self.reject)
        lay.addWidget(bb)


class AboutDialog(QDialog):
    def __init__(self, version: str, cards: list, problems: list[str], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About LeukoScan")
        self.resize(640, 640)
        lay = QVBoxLayout(self)
        b = QTextBrowser()
        b.setOpenExternalLinks(True)
        parts = [
            f"<h2>LeukoScan {escape(version)}</h2>",
            "<p>Classifies single-cell blood-smear images (C-NMC 2019 style: one segmented cell per image) as "
            "<b>ALL</b> (acute lymphoblastic leukemia blast) or <b>HEM</b> (normal), for review by a technician.</p>",
            f"<p style='background:#fff3cd; color:#5c4400; padding:6px'>{NOT_A_DEVICE}</p>",
            "<p>Models are trained on the C-NMC 2019 dataset (Gupta A., Gupta R. (2019), The Cancer Imaging "
            "Archive, doi:10.7937/tcia.2019.dc64i46r, CC BY 3.0): segmented cells from one lab and staining "
            "protocol. Images from other scanners, stains or segmentation methods may be classified wrongly.</p>",
            "<h3>Installed models</h3>",
        ]
        if not cards:
            parts.append("<p><i>No models installed.</i></p>")
        for c in cards:
            parts.append(card_html(c))
            parts.append("<hr>")
        if problems:
            parts.append("<h3>Models that could not be used</h3><ul>")
            parts += [f"<li>{escape(p)}</li>" for p in problems]
            parts.append("</ul>")
        from .settings import log_path, user_data_dir

        parts.append(
            "<h3>Where LeukoScan keeps things</h3>"
            f"<p>Log (include it when reporting a problem): <code>{escape(str(log_path()))}</code><br>"
            f"Case stores, settings and extra models: <code>{escape(str(user_data_dir()))}</code></p>"
        )
        b.setHtml("".join(parts))
        lay.addWidget(b)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        bb.rejected.connect(self.reject)
        lay.addWidget(bb)


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        form = QFormLayout(self)
        self.reviewer = QLineEdit(settings.reviewer)
        self.reviewer.setPlaceholderText("e.g. initials or staff ID")
        self.device = QComboBox()
        self.device.addItems(["Automatic (GPU if available)", "CPU only", "GPU (CUDA)"])
        self.device.setCurrentIndex(DEVICES.index(settings.device))
        self.precision = QComboBox()
        self.precision.addItems(
            [
                "Automatic (int8 where the model card says it keeps the calls)",
                "Float32 only",
                "Int8 (if the model has it)",
            ]
        )
        self.precision.setToolTip(
            "int8: the model's quantised copy, faster on a CPU; a model card offers it only when its calls "
            "agreed with float32 on >= 99% of held-out cells (docs/speed.md)"
        )
        self.precision.setCurrentIndex(PRECISIONS.index(settings.precision))
        self.batch = QSpinBox()
        self.batch.setRange(1, 256)
        self.batch.setValue(settings.batch_size)
        self.thumb = QSpinBox()
        self.thumb.setRange(64, 256)
        self.thumb.setSingleStep(16)
        self.thumb.setSuffix(" px")
        self.thumb.setValue(settings.thumb_size)
        self.advance = QCheckBox("Move to the next cell after a review key")
        self.advance.setChecked(settings.auto_advance)
        self.bom = QCheckBox("CSV reports for Excel (UTF-8 with byte-order mark)")
        self.bom.setToolTip(
            "Excel on Windows then shows names with accents right; scripts and other programs "
            "may show a stray character at the start of the first column"
        )
        self.bom.setChecked(settings.csv_bom)
        form.addRow("Reviewer name", self.reviewer)
        form.addRow("Compute device", self.device)
        form.addRow("Model precision", self.precision)
        form.addRow("Batch size", self.batch)
        form.addRow("Thumbnail size", self.thumb)
        form.addRow("", self.advance)
        form.addRow("", self.bom)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)
        self.setMinimumWidth(420)

    def apply(self) -> None:
        s = self.settings
        s.reviewer = self.reviewer.text()
        s.device = DEVICES[self.device.currentIndex()]
        s.precision = PRECISIONS[self.precision.currentIndex()]
        s.batch_size = self.batch.value()
        s.thumb_size = self.thumb.value()
        s.auto_advance = self.advance.isChecked()
        s.csv_bom = self.bom.isChecked()


__all__ = ["ModelInfoDialog", "AboutDialog", "SettingsDialog", "card_html", "card_facts_html", "NOT_A_DEVICE", "Qt"]
