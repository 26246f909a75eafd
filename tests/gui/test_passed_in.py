"""Components get what they need passed in (issue 27 part 3), instead of reaching through their window:
the preview's overlay asks the classifier getter it was given, the model card dialog shows the cards it was given."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from engine.card import load_card


def test_the_preview_maps_with_the_model_it_is_given(qtbot):
    from gui.preview import PreviewPanel

    current: dict[str, object] = {"clf": None}
    host = QWidget()  # a window without a model chooser: nothing is looked up on it
    qtbot.addWidget(host)
    panel = PreviewPanel(lambda: current["clf"], lambda cell: False, host)
    assert panel.cam.classifier() is None
    assert panel.cam.unavailable() == "No model is loaded."
    current["clf"] = chosen = object()
    assert panel.cam.classifier() is chosen  # read when a map is wanted: a model chosen later is the one used
    panel.close_loader()


def test_the_model_card_dialog_shows_the_cards_it_is_given(qtbot, tiny_models_dir, monkeypatch):
    import gui.card_view as card_view
    from gui.dialogs import ModelInfoDialog

    seen = []
    real = card_view.donor_chart
    monkeypatch.setattr(
        card_view, "donor_chart", lambda card, members: seen.append(list(members)) or real(card, members)
    )
    ensemble = load_card(tiny_models_dir / "tiny_ensemble.json")
    members = [load_card(tiny_models_dir / f"{n}.json") for n in ("tiny_a", "tiny_b")]
    host = QWidget()  # no model_chooser, no cards attribute
    qtbot.addWidget(host)
    dlg = ModelInfoDialog(ensemble, members, None, host)
    qtbot.addWidget(dlg)
    assert [[c.name for c in m] for m in seen] == [["tiny_a", "tiny_b"]]
    assert dlg.view.card is ensemble
