"""Colours shared by the gallery, preview, summary and chart (chosen to stay distinct for common
colour-vision deficiencies; every colour is paired with text: ALL/HEM, ?, check mark, !)."""

from PySide6.QtGui import QColor

from engine.domain.labels import ALL, HEM, is_excluded

ALL_COLOR = QColor("#c0392b")  # ALL blast: red
HEM_COLOR = QColor("#2471a3")  # HEM normal: blue
REVIEW_COLOR = QColor("#e69f00")  # needs review: amber
REVIEWED_COLOR = QColor("#1e8449")  # reviewed: green
ERROR_COLOR = QColor("#7f8c8d")  # error: grey
PENDING_COLOR = QColor("#5d6370")  # dim: not to be mistaken for the selection ring
EXCLUDED_COLOR = QColor("#6c5b7b")  # excluded (not a cell, artefact, failed QC): muted violet, counted nowhere
# Selection is neutral: a light ring and a faint lightening of the tile, never a hue that means something
# (the platform highlight is a blue that read as HEM).  The overlay sits under the cell image, so the
# image's own colours are never tinted.
SELECTION_COLOR = QColor("#f2f2f2")  # ring around a selected tile
SELECTION_OVERLAY = QColor(255, 255, 255, 46)  # over the dark tile background
TABLE_SELECTION = "#5b6270"  # selected table rows: neutral slate, distinct from ALL red, HEM blue, review amber


def label_color(label: str | None) -> QColor:
    if label == ALL:
        return ALL_COLOR
    if label == HEM:
        return HEM_COLOR
    if is_excluded(label):
        return EXCLUDED_COLOR
    return PENDING_COLOR


def short_label(label: str | None) -> str:
    """ALL / HEM / "excl." for a tile badge (an exclusion's reason is in the tooltip and the preview)."""
    if is_excluded(label):
        return "excl."
    return label or ""
