"""A model as plain data, so a Ray worker can run it without the models folder.

The driver reads the card(s) and the ONNX bytes once (:meth:`ModelPayload.from_registry`, checked
against the cards' sha256), puts them in Ray's object store, and every actor builds its own
:class:`~engine.model.Classifier` from them (:meth:`ModelPayload.build`, which checks the sha256 again:
what was verified is what runs).  Nothing here imports Ray: it is pure engine code.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..card import ModelCard, for_precision, verify_onnx_bytes
from ..model import Classifier, member_from_bytes, read_onnx_bytes
from ..preprocess import Preprocessing
from ..registry import Registry


@dataclass(frozen=True)
class ModelPayload:
    card: ModelCard  # the model's card (an ensemble's own card for an ensemble)
    members: tuple[tuple[ModelCard, bytes], ...]  # (card, ONNX bytes) of each single model, in card order

    @classmethod
    def from_registry(cls, registry: Registry, name: str, precision: str = "fp32") -> ModelPayload:
        """Read model ``name`` (and an ensemble's members) from ``registry``, each single model's file at
        ``precision`` (:func:`engine.card.for_precision`).  Raises ModelError."""
        card = for_precision(registry.get(name), precision)
        cards = [for_precision(registry.get(m), precision) for m in card.members] if card.is_ensemble else [card]
        members = []
        for mc in cards:
            data = read_onnx_bytes(mc)
            verify_onnx_bytes(mc, data)  # fail on the driver, before any actor starts
            members.append((mc, data))
        return cls(card, tuple(members))

    @property
    def preprocessings(self) -> tuple[Preprocessing, ...]:
        """The distinct input specs, in the order :attr:`Classifier.preprocessings` has them."""
        return tuple(dict.fromkeys(mc.preprocessing for mc, _ in self.members if mc.preprocessing is not None))

    @property
    def precision(self) -> str:
        """As :attr:`engine.model.Classifier.precision`: "fp32", "int8" or, for a mixed ensemble, "fp32+int8"."""
        return "+".join(dict.fromkeys(mc.precision for mc, _ in self.members))

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.members)

    def build(self, device: str = "cpu", threads: int | None = None) -> Classifier:
        """A live Classifier (one onnxruntime session per member).  Raises ModelError."""
        return Classifier(self.card, [member_from_bytes(mc, data, device, threads) for mc, data in self.members])

    def report_model(self, active_provider: str) -> ReportModel:
        """What the report needs of the model, with the provider an actor actually used."""
        c = self.card
        names = tuple(mc.name for mc, _ in self.members) if c.is_ensemble else ()
        return ReportModel(c.name, c.version, c.threshold, c.review_margin, names, active_provider)


@dataclass(frozen=True)
class ReportModel:
    """The attributes of a :class:`Classifier` that :func:`engine.report.cell_row` reads.

    The driver of a Ray run holds no onnxruntime session (the actors do), so it describes the model
    with this instead; ``active_provider`` is the one of the actor that scored the row."""

    name: str
    version: str
    threshold: float
    review_margin: float
    member_names: tuple[str, ...]
    active_provider: str
