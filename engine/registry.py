"""The model registry: every card found in the model folders, validated.

Default folders, in order: the bundled ``resources/models`` (:func:`engine.paths.models_dir`) and the
user models folder (:func:`engine.paths.user_models_dir`).  Every ``*.json`` there is a card (hidden
files ignored).  A card is listed only when it is valid and its ONNX file exists and matches the card's
sha256; every other card is reported in :attr:`Registry.problems` with the file and the reason.  When two
folders define the same name, the first folder wins (a user card cannot silently replace a bundled
model) and the duplicate is a problem.  An ensemble card is valid when all its members are.

There is no per-name logic: whatever cards are present are the models.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from .card import ModelCard, ModelError, for_precision, load_card, sha256_file
from .model import DEVICES, Classifier, Member, load_member
from .paths import models_dir, user_models_dir

log = logging.getLogger(__name__)

_SHA_CACHE: dict[tuple[str, int, int], str] = {}
_SHA_LOCK = threading.Lock()


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _SHA_LOCK:
        if key in _SHA_CACHE:
            return _SHA_CACHE[key]
    digest = sha256_file(path)
    with _SHA_LOCK:
        _SHA_CACHE[key] = digest
    return digest


def default_dirs() -> list[Path]:
    return [models_dir(), user_models_dir()]


def model_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """The folders of ``--models-dir DIR`` in the app and the CLI alike: DIR is added after the bundled and
    user folders (a lab tries a new model beside the shipped ones; a card named like a shipped one is
    reported as a duplicate, never silently preferred)."""
    return [*default_dirs(), *(Path(d).expanduser() for d in extra)]


class Registry:
    """Cards from ``dirs`` (default: bundled models, then the user models folder)."""

    def __init__(self, dirs: Iterable[str | Path] | None = None):
        self.dirs: list[Path] = default_dirs() if dirs is None else [Path(d) for d in dirs]
        self._cards: dict[str, ModelCard] = {}
        self._problems: list[str] = []
        self._problem_by_name: dict[str, str] = {}
        self._members: dict[tuple, Member] = {}
        self._lock = threading.Lock()
        self.refresh()

    # ---------------------------------------------------------------- discovery
    def refresh(self) -> None:
        """Re-read the folders (e.g. after the user dropped a model into the user folder)."""
        cards: dict[str, ModelCard] = {}
        problems: list[str] = []
        by_name: dict[str, str] = {}

        def problem(key: str, msg: str) -> None:
            problems.append(msg)
            by_name.setdefault(key, msg)

        for d in self.dirs:
            if not d.is_dir():
                continue
            for p in sorted(d.glob("*.json")):
                if p.name.startswith("."):
                    continue
                try:
                    card = load_card(p)
                except ModelError as exc:
                    problem(p.stem, str(exc))
                    continue
                if card.name in cards:
                    problem(
                        card.name,
                        f"{p}: model name '{card.name}' is already defined by {cards[card.name].path}; ignored",
                    )
                    continue
                if not card.is_ensemble:
                    try:
                        self._verify_file(card)
                    except ModelError as exc:
                        problem(card.name, str(exc))
                        continue
                cards[card.name] = card
        # Ensembles: every member must be a valid single model.
        for name, card in list(cards.items()):
            if not card.is_ensemble:
                continue
            bad = [m for m in card.members if m not in cards or cards[m].is_ensemble]
            if bad:
                why = "; ".join(
                    f"member '{m}' "
                    + (
                        "is itself an ensemble"
                        if m in cards
                        else "is not a valid registered model" + (f" ({by_name[m]})" if m in by_name else "")
                    )
                    for m in bad
                )
                problem(name, f"{card.path}: ensemble '{name}' unusable: {why}")
                del cards[name]
        with self._lock:
            self._cards = cards
            self._problems = problems
            self._problem_by_name = by_name
        for msg in problems:
            log.warning("model card problem: %s", msg)

    @staticmethod
    def _verify_file(card: ModelCard) -> None:
        assert card.onnx_file is not None
        if not card.onnx_file.is_file():
            raise ModelError(f"{card.onnx_file}: ONNX file named by {card.path.name} is missing")
        actual = _cached_sha256(card.onnx_file)
        expected = card.sha256 or ""
        if actual != expected:
            raise ModelError(
                f"{card.onnx_file}: sha256 mismatch (card {card.path.name} says {expected[:12]}..., "
                f"file is {actual[:12]}...): the model file was changed or corrupted"
            )

    # ---------------------------------------------------------------- queries
    @property
    def problems(self) -> list[str]:
        """Cards that failed validation: one message per card naming the file and the reason."""
        return list(self._problems)

    def cards(self) -> list[ModelCard]:
        """Valid cards: single models first, then ensembles, in folder order then by file name."""
        cs = list(self._cards.values())
        return [c for c in cs if not c.is_ensemble] + [c for c in cs if c.is_ensemble]

    def names(self) -> list[str]:
        return [c.name for c in self.cards()]

    def __contains__(self, name: object) -> bool:
        return name in self._cards

    def get(self, name: str) -> ModelCard:
        card = self._cards.get(name)
        if card is not None:
            return card
        if name in self._problem_by_name:
            raise ModelError(f"model '{name}' is unusable: {self._problem_by_name[name]}")
        avail = ", ".join(self.names()) or "none"
        where = ", ".join(str(d) for d in self.dirs)
        raise ModelError(f"unknown model '{name}' (available: {avail}; model folders: {where})")

    # ---------------------------------------------------------------- loading
    def load(self, name: str, device: str = "auto", threads: int | None = None, precision: str = "fp32") -> Classifier:
        """A ready :class:`Classifier`.  Sessions are cached per (model file, device, threads) and
        shared, e.g. between ``inceptionv3`` and an ensemble containing it.  ``precision`` (``auto``, ``fp32``,
        ``int8``) picks each single model's file (:func:`engine.card.for_precision`).  Raises ModelError."""
        if device not in DEVICES:
            raise ModelError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
        card = for_precision(self.get(name), precision)
        member_cards = [for_precision(self.get(m), precision) for m in card.members] if card.is_ensemble else [card]
        members = [self._member(mc, device, threads) for mc in member_cards]
        return Classifier(card, members)

    def _member(self, card: ModelCard, device: str, threads: int | None) -> Member:
        key = (str(card.path), card.sha256, device, threads)
        with self._lock:
            m = self._members.get(key)
        if m is not None and m.card == card:
            return m
        m = load_member(card, device=device, threads=threads)
        with self._lock:
            self._members[key] = m
        return m

    def release(self) -> None:
        """Drop cached sessions (frees their memory once no Classifier uses them)."""
        with self._lock:
            self._members.clear()


_KEY_METRICS = ("weighted_f1", "f1", "auroc", "auc", "sensitivity", "specificity", "recall", "balanced", "accuracy")
_DATA_KEYS = ("split", "subjects", "cells")


def _flat_numbers(d: dict, prefix: str = "", depth: int = 0) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for k, v in d.items():
        if k == "data" or isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out.append((prefix + str(k), v))
        elif isinstance(v, dict) and depth < 2:
            out.extend(_flat_numbers(v, f"{prefix}{k}.", depth + 1))
    return out


def _find_data(d: dict, depth: int = 0):
    data = d.get("data")
    if data:
        return data
    if depth < 2:
        for v in d.values():
            if isinstance(v, dict):
                found = _find_data(v, depth + 1)
                if found:
                    return found
    return None


def default_model(cards: Sequence[ModelCard]) -> str | None:
    """The model a front end uses when the user named none: the card marked ``recommended``, else an
    ensemble, else the first card (one rule for the app and the CLI)."""
    pick = [c.name for c in cards if c.recommended] or [c.name for c in cards if c.is_ensemble]
    return pick[0] if pick else (cards[0].name if cards else None)


def describe_metrics(card: ModelCard, limit: int = 5, data_chars: int | None = 60) -> str:
    """One line of a card's key validation metrics, for tables
    (``"weighted_f1=0.871 auroc=0.930 on split=test subjects=9 cells=1200"``); a data description longer than
    ``data_chars`` is cut with "…" (None: never, e.g. for JSON)."""
    m = card.metrics or {}
    # top-level numbers are the card's headline metrics; nested ones only when there are none
    nums = [(k, v) for k, v in _flat_numbers(m) if not k.rsplit(".", 1)[-1].startswith("target")]
    top = [(k, v) for k, v in nums if "." not in k]
    nums = top or nums

    def rank(item: tuple[str, float]) -> int:
        leaf = item[0].rsplit(".", 1)[-1].lower()
        for i, key in enumerate(_KEY_METRICS):
            if key in leaf:
                return i
        return len(_KEY_METRICS)

    nums = sorted(nums, key=rank)[:limit]  # stable: card order within a rank
    parts = [f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in nums]
    data = _find_data(m)
    if isinstance(data, dict):
        bits = [f"{k}={data[k]}" for k in _DATA_KEYS if k in data]
        if bits:
            parts.append("on " + " ".join(bits))
    elif isinstance(data, str):
        short = data_chars is None or len(data) <= data_chars
        parts.append("on " + (data if short or data_chars is None else data[: data_chars - 1].rstrip() + "…"))
    if not parts and isinstance(m.get("note"), str):
        parts.append(m["note"])
    return " ".join(parts) or "no validation metrics in the card"
