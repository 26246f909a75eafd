"""The app's command-line and export settings mean what the CLI's do (issue 19 §1, §3): ``--models-dir`` adds
folders after the bundled and user ones in both, and the CSV reports carry a UTF-8 BOM (for Excel) only when
the setting / ``--bom`` asks for it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gui_helpers import make_window, open_and_classify  # noqa: F401  (fixture + helper)
from tinymodels import make_tiny_model

from engine.cli import main as cli_main
from engine.registry import model_dirs

BOM = b"\xef\xbb\xbf"


def test_models_dir_adds_folders_in_the_app_as_in_the_cli(qtbot, tmp_path, monkeypatch, capsys):
    from gui.app import build_window, parse_args

    bundled = tmp_path / "resources"
    make_tiny_model(bundled / "models", name="shipped")
    extra = tmp_path / "extra"
    make_tiny_model(extra, name="trial", seed=3)
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(bundled))

    assert cli_main(["models", "--json", "--models-dir", str(extra)]) == 0
    cli_names = {m["name"] for m in json.loads(capsys.readouterr().out)["models"]}
    assert cli_names == {"shipped", "trial"}

    w = build_window(parse_args(["--models-dir", str(extra), "--model", "trial", "--no-restore"]))
    try:
        assert w.service.registry_dirs() == model_dirs([extra])
        chooser = w.model_chooser
        qtbot.waitUntil(lambda: set(chooser.cards) == cli_names and chooser.classifier is not None, timeout=30_000)
        assert w.model_chooser.classifier.name == "trial"
    finally:
        w.close()


def _export(qtbot, w, path):
    with qtbot.waitSignal(w.exports.written, timeout=20_000) as b:
        assert w.exports.csv(path)
    return b.args[0]


def test_csv_bom_setting(qtbot, make_window, cells_dir, tmp_path):
    plain = make_window()
    open_and_classify(qtbot, plain, [cells_dir])
    written = _export(qtbot, plain, tmp_path / "plain.csv")
    assert len(written) >= 2 and not any(Path(p).read_bytes()[:3] == BOM for p in written)
    plain.doc.unexported = False

    other = tmp_path / "cells"  # the first window holds the case store of cells_dir
    shutil.copytree(cells_dir, other)
    excel = make_window(csv_bom=True)
    open_and_classify(qtbot, excel, [other])
    written = _export(qtbot, excel, tmp_path / "excel.csv")
    assert len(written) >= 2 and all(Path(p).read_bytes()[:3] == BOM for p in written)
    assert (tmp_path / "excel.csv").read_bytes()[3:] == (tmp_path / "plain.csv").read_bytes().replace(
        str(cells_dir).encode(), str(other).encode()
    )
    excel.doc.unexported = False


def test_settings_dialog_keeps_the_csv_for_excel_choice(qtbot):
    from gui.dialogs import SettingsDialog
    from gui.settings import Settings

    s = Settings()
    assert s.csv_bom is False  # the default: the same bytes as leukoscan-cli
    dlg = SettingsDialog(s)
    qtbot.addWidget(dlg)
    assert not dlg.bom.isChecked()
    dlg.bom.setChecked(True)
    dlg.apply()
    again = SettingsDialog(Settings())  # a new reader of the same settings file
    qtbot.addWidget(again)
    assert Settings().csv_bom is True and again.bom.isChecked()
