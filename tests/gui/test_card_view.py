"""The model card view's charts (issue 19): per-donor bars, reliability diagram, the details toggle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QPointF
from tinymodels import make_tiny_model

from engine.card import load_card
from engine.heldout import ALL_DONORS, donors_seen, held_out_block

MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"


def _shipped(name):
    path = MODELS / f"{name}.json"
    if not path.exists():
        pytest.skip("no bundled models")
    return load_card(path)


def _colour_count(img, colour, tol=40) -> int:
    """Pixels of ``img`` (QImage) within ``tol`` of ``colour`` (QColor), sampled every 2nd pixel."""
    n = 0
    for y in range(0, img.height(), 2):
        for x in range(0, img.width(), 2):
            c = img.pixelColor(x, y)
            n += abs(c.red() - colour.red()) + abs(c.green() - colour.green()) + abs(c.blue() - colour.blue()) < tol
    return n


def test_shipped_card_shows_one_bar_per_donor_healthy_and_patients_apart(qtbot):
    from gui.card_view import ModelCardView
    from gui.dialogs import card_facts_html
    from gui.style import ALL_COLOR, HEM_COLOR

    card = _shipped("inceptionv3")
    view = ModelCardView(card, card_facts_html(card))
    qtbot.addWidget(view)
    view.resize(1100, 650)
    view.show()
    qtbot.waitExposed(view)
    chart = view.donors.chart
    per = card.metrics["held_out"]["per_donor"]
    assert {b.donor for b in chart.healthy} == {d for d, v in per.items() if v["class"] == "HEM"}
    assert {b.donor for b in chart.patients} == {d for d, v in per.items() if v["class"] == "ALL"}
    healthy = sorted((d for d, v in per.items() if v["class"] == "HEM"), key=lambda d: int(d[1:]))
    assert [b.donor for b in chart.healthy] == healthy  # healthy donors first, by number
    seen = donors_seen(card)  # the 4.0 cards: refit on every donor after the cross-validation
    assert all(b.seen_in_training is (seen == ALL_DONORS or b.donor in (seen or ())) for b in chart.bars)
    img = view.donors.grab().toImage()
    if chart.bars[0].seen_in_training:  # hatched bars: the colour at alpha 110 over the background, and hatch lines
        from PySide6.QtGui import QColor

        bg = img.pixelColor(1, 1)

        def bar_colour(c):
            a = 110 / 255
            return QColor(*(round(a * x + (1 - a) * y) for x, y in zip(c.getRgb()[:3], bg.getRgb()[:3])))
    else:

        def bar_colour(c):
            return c

    assert _colour_count(img, bar_colour(HEM_COLOR)) > 200 and _colour_count(img, bar_colour(ALL_COLOR)) > 200
    tips = [view.donors.tip_at(r.center()) for r, _ in view.donors._hits]
    first, last = per[healthy[0]], chart.patients[-1]
    where = (
        "in the shipped model's training" if chart.healthy[0].seen_in_training else "never seen by the shipped model"
    )
    assert tips[0].startswith(
        f"Healthy donor {healthy[0]}: {1 - first['share_called_all']:.2f} of {first['n_cells']} cells called "
        f"HEM (normal); {where}"
    )
    assert tips[-1].startswith(
        f"Patient {last.donor}: {per[last.donor]['share_called_all']:.2f} of "
        f"{per[last.donor]['n_cells']} cells called ALL"
    )
    assert view.donors.tip_at(QPointF(2, 2)) == ""
    if seen == ALL_DONORS:
        assert "the model you run has seen them all" in view.caption.text()
    else:
        assert "None of these donors was in the shipped model's training" in view.caption.text()
    # words beside the charts; the raw card only behind the toggle
    assert "never saw in training" in view.summary.text()
    assert view.details.isHidden() and '"sha256"' in view.details.toPlainText()
    view.toggle.setChecked(True)
    assert view.details.isVisible()


def test_refit_model_marks_every_donor_as_seen_and_an_ensemble_follows_its_members(qtbot, tmp_path):
    from tinymodels import make_tiny_ensemble

    from gui.card_view import ModelCardView

    card = _shipped("vgg19")  # since 2.0 the head is refit on every development donor
    vgg = ModelCardView(card, "")
    qtbot.addWidget(vgg)
    held = card.metrics["held_out"]
    assert len(vgg.donors.chart.healthy) == held["n_healthy_donors"]
    assert len(vgg.donors.chart.patients) == held["n_all_patients"]
    assert all(b.seen_in_training for b in vgg.donors.chart.bars)
    assert "refit on every development donor" in vgg.caption.text()

    block = held_out_block(
        {"5": {"n": 9, "class": "ALL", "accuracy": 0.8}, "H6": {"n": 9, "class": "HEM", "accuracy": 0.1}},
        {"ALL": {"recall": 0.8}, "HEM": {"recall": 0.1}},
        "fold 1",
    )
    for name, training in (
        ("a", {"train_subjects": ["1", "H2"]}),
        ("b", {"shipped_model": "logistic head refit on all 40 subjects"}),
    ):
        path = make_tiny_model(tmp_path, name)
        data = json.loads(path.read_text())
        data["training"] = training
        path.write_text(json.dumps(data))
    ens_path = make_tiny_ensemble(tmp_path, ["a", "b"], name="ab")
    data = json.loads(ens_path.read_text())
    data["metrics"]["held_out"] = block
    ens_path.write_text(json.dumps(data))
    cards = [load_card(tmp_path / f"{n}.json") for n in ("a", "b", "ab")]
    ens = ModelCardView(cards[2], "", cards)
    qtbot.addWidget(ens)
    assert all(b.seen_in_training for b in ens.donors.chart.bars)  # member b saw every donor
    only_a = ModelCardView(cards[2], "", [cards[0], load_card(make_tiny_model(tmp_path / "x", "b"))])
    qtbot.addWidget(only_a)
    assert all(b.seen_in_training is None for b in only_a.donors.chart.bars)  # b's card does not say: no guess
    alone = ModelCardView(cards[2], "", [])  # members unknown: the chart does not guess
    qtbot.addWidget(alone)
    assert all(b.seen_in_training is None for b in alone.donors.chart.bars)
    assert "does not say which donors" in alone.caption.text()


def test_reliability_diagram_from_the_cards_table_and_a_card_without_one(qtbot, tmp_path):
    from gui.card_view import ModelCardView
    from gui.style import REVIEW_COLOR

    path = make_tiny_model(tmp_path, "t")
    plain = ModelCardView(load_card(path), "<h2>t</h2>")
    qtbot.addWidget(plain)
    plain.resize(900, 600)
    assert plain.donors.chart is None and plain.caption.text() == ""
    assert plain.reliability.table is None
    before = _colour_count(plain.reliability.grab().toImage(), REVIEW_COLOR)

    data = json.loads(path.read_text())
    data["metrics"]["ece"] = 0.05
    data["metrics"]["validation_honest"] = {
        "reliability": {
            "bins": 15,
            "mean_p_all": [0.05, 0.3, 0.6, 0.9],
            "fraction_all": [0.1, 0.2, 0.7, 0.95],
            "n_cells": [300, 40, 50, 500],
        }
    }
    data["metrics"]["held_out"] = held_out_block(
        {"H1": {"n": 10, "class": "HEM", "accuracy": 0.8}, "7": {"n": 12, "class": "ALL", "accuracy": 0.5}},
        {"ALL": {"recall": 0.5}, "HEM": {"recall": 0.8}},
        "unit test",
    )
    data["metrics"]["held_out"]["cell_area_baseline"] = {"donors": {"healthy_donors": {"per_subject": {"H1": 0.1}}}}
    data["training"]["train_subjects"] = ["7", "8"]
    path.write_text(json.dumps(data))
    view = ModelCardView(load_card(path), "")
    qtbot.addWidget(view)
    view.resize(900, 600)
    assert view.reliability.table["bins"] == 15
    assert _colour_count(view.reliability.grab().toImage(), REVIEW_COLOR) > before + 20  # the points and line
    seen = {b.donor: b.seen_in_training for b in view.donors.chart.bars}
    assert seen == {"H1": False, "7": True}
    assert "1 of 2 donors were never seen by the shipped model" in view.caption.text()
    assert view.donors.chart.healthy[0].baseline == 0.1 and view.donors.chart.patients[0].baseline is None
    assert "Black ticks: the same share for cell size alone" in view.caption.text()
    view.donors.grab()  # paints: the bars' hover areas are laid out
    tips = [view.donors.tip_at(r.center()) for r, _ in view.donors._hits]
    assert tips[0].endswith("never seen by the shipped model; cell size alone: 0.10")
