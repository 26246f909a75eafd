"""Which model classifies: the model box, the device label and the "no usable model" banner.

Cards are listed and models loaded by the service off the GUI thread; the chooser keeps the choice
(the user's, else the settings', else the registry's default) and announces the classifier once it
is loaded.  A later choice supersedes a load still in flight; a model that fails to load leaves the
previous one in place.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel

log = logging.getLogger("leukoscan.gui")


class ModelChooser(QObject):
    loaded = Signal(object)  # the engine's Classifier now in use (this module imports no engine type)
    bannerChanged = Signal(object)  # list[str]: html lines, none: no banner (object: Signal(list) copies)
    status = Signal(str, int)
    failed = Signal(str, str)  # title, text for a dialog

    def __init__(self, service, settings, parent=None) -> None:
        super().__init__(parent)
        self.service = service
        self.settings = settings
        self.cards: dict[str, Any] = {}  # name -> engine.card.ModelCard
        self.problems: list[str] = []
        self.classifier: Any = None  # the engine's Classifier in use (None: none loaded yet)
        self.wanted: str | None = None
        self.combo = QComboBox()
        self.combo.setObjectName("modelCombo")
        self.combo.setMinimumContentsLength(26)
        self.combo.setToolTip("The model that classifies the cells (from the installed model cards)")
        self.combo.activated.connect(self.chosen)
        self.device_label = QLabel("Model: none")
        self.device_label.setObjectName("deviceLabel")
        self.device_label.setTextFormat(Qt.TextFormat.RichText)
        self._loading = None  # the load in flight (gui.tasks.Task): a later choice cancels it

    def current(self) -> Any:
        """The model in use now, or None: handed to what reads it later (the preview's overlay)."""
        return self.classifier

    def reload(self) -> None:
        """Read the model folders again (at start, File ▸ Reload models)."""
        self.service.list_models(on_result=self._listed)

    def _listed(self, listed) -> None:
        cards, problems = listed.cards, listed.problems
        self.cards = {c.name: c for c in cards}
        self.problems = list(problems)
        self.combo.clear()
        for c in cards:
            self.combo.addItem(c.display_name + (f"  v{c.version}" if c.version else ""), c.name)
        self.bannerChanged.emit(self.banner_lines())
        if not cards:
            self.device_label.setText("Model: <b>none installed</b>")
            return
        want = self.wanted or self.settings.model
        if want not in self.cards:
            want = self.service.default_model(cards)
        self.select(want)  # also after File > Reload models: a changed card loads its new version

    def banner_lines(self) -> list[str]:
        lines = []
        if not self.cards:
            dirs = ", ".join(str(d) for d in self.service.registry_dirs()) or "the models folders"
            lines.append(
                "<b>No usable model is installed.</b> Cells can be opened but not classified. "
                f"Put a model (.onnx + .json card) into: {dirs}, then Classification ▸ Reload models."
            )
        if self.problems:
            lines.append(
                "<b>Models that cannot be used:</b> "
                + "; ".join(self.problems[:4])
                + (" …" if len(self.problems) > 4 else "")
            )
        return lines

    def chosen(self, index: int) -> None:
        name = self.combo.itemData(index)
        if name and name != (self.classifier.name if self.classifier else None):
            self.select(name)

    def select(self, name: str) -> None:
        """Load ``name`` in the background; ``loaded`` follows (or a dialog says why not)."""
        self.wanted = name
        i = self.combo.findData(name)
        if i >= 0:
            self.combo.setCurrentIndex(i)
        shown = self.cards[name].display_name if name in self.cards else name
        self.device_label.setText(f"Model: loading {shown}…")
        if self._loading is not None:
            self._loading.cancel()  # superseded: its model is never announced
        self._loading = self.service.load_model(
            name, self.settings.device, self._loaded, self._failed, precision=self.settings.precision
        )

    def _loaded(self, clf) -> None:
        self._loading = None
        self.classifier = clf
        self.settings.model = clf.name
        warn = "; ".join(getattr(clf, "warnings", []) or [])
        text = f"Model: <b>{clf.display_name}</b> &nbsp; Device: <b>{clf.device_label}</b>{_precision(clf)}"
        if warn:
            text += f" &nbsp; <span style='color:#b9770e'>⚠ {warn}</span>"
            self.status.emit(warn, 15000)
        self.device_label.setText(text)
        self.device_label.setToolTip(f"onnxruntime provider: {clf.active_provider}" + (f"\n{warn}" if warn else ""))
        log.info("model %s %s loaded on %s%s", clf.name, clf.version, clf.active_provider, f" ({warn})" if warn else "")
        self.loaded.emit(clf)

    def _failed(self, failure) -> None:
        self._loading = None
        name, message = failure.name, failure.message
        self.failed.emit(
            "Model could not be loaded",
            f"The model '{name}' could not be loaded:\n\n{message}\n\nLeukoScan stays usable: choose another model.",
        )
        clf = self.classifier
        if clf is not None:
            self.wanted = clf.name
            i = self.combo.findData(clf.name)
            if i >= 0:
                self.combo.setCurrentIndex(i)
            self.device_label.setText(
                f"Model: <b>{clf.display_name}</b> &nbsp; Device: <b>{clf.device_label}</b>{_precision(clf)}"
            )
        else:
            self.device_label.setText(f"Model: <span style='color:#c0392b'>{name} failed to load</span>")


def _precision(clf) -> str:
    """The status line says " · int8" when (a member of) the model runs its int8 file; nothing for float32."""
    p = getattr(clf, "precision", "fp32")
    return "" if p == "fp32" else f" · <b>{p}</b>"
