"""Model cards: the JSON file beside every ONNX model.

A card tells the engine how to use its model correctly (input tensor, preprocessing, calibration,
threshold, review margin) and tells a lab why it may trust it (validation metrics and the data they
were measured on, training provenance).  ``resources/models/<name>.json`` + ``<name>.onnx``.

Schema (``schema_version`` 1)::

    {
      "schema_version": 1,
      "type": "onnx",                      # or "ensemble" (then "members" instead of "onnx_file")
      "name": "inceptionv3",               # registry key, lower-case [a-z0-9_-]
      "display_name": "InceptionV3",
      "architecture": "InceptionV3",
      "version": "1.0.0",
      "created": "2026-11-26",
      "onnx_file": "inceptionv3.onnx",     # relative to the card
      "sha256": "<hex of the ONNX file>",
      "input":  {"name": "image", "height": 299, "width": 299, "channels": 3,
                 "layout": "NHWC", "dtype": "float32", "value_range": [0, 255]},
      "output": {"name": "logit", "kind": "logit"},   # one column: logit of P(ALL); or "kind": "probability"
      "preprocessing": {"crop_fraction": 0.75, "resize_filter": "bilinear"},
      "classes": ["ALL", "HEM"], "positive_class": "ALL",
      "threshold": 0.5,                    # decision threshold on calibrated P(ALL)
      "temperature": 1.0,                  # calibrated P(ALL) = sigmoid(logit / temperature)
      "review_margin": 0.15,               # flagged for review when |P(ALL) - threshold| < review_margin
      "test_time_augmentation": {"views": [0, 1, 2, 3, 4, 5, 6, 7], "combine": "mean_logit"},
                                           # optional (default: view 0 only): the model is run on these dihedral
                                           # views of each cell (engine.preprocess.dihedral) and the mean logit
                                           # is calibrated; temperature/threshold are fitted on that mean
      "metrics": {...},                    # free-form: validation metrics + "data" they were measured on
      "training": {...},                   # free-form provenance: data, initial weights, epochs, versions
      "notes": "...",
      "recommended": true,                 # optional: the app's default choice among the installed models
      "int8": {"onnx_file": "inceptionv3.int8.onnx", "sha256": "<hex>"}
                                           # optional: a quantised copy that passed the int8 gate (its figures
                                           # in metrics.int8_quantization, "pass": true); used by --precision
                                           # int8, or auto (see :func:`for_precision`)
    }

    ensemble: {"schema_version": 1, "type": "ensemble", "name": "ensemble", "members": ["inceptionv3", "vgg19"],
               "threshold": ..., "review_margin": ..., "metrics": ..., ...}
    calibrated P(ALL) of an ensemble = mean of the members' calibrated P(ALL); flagged for review also when the
    members' own decisions (each at its own threshold) disagree.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .domain.labels import LABELS
from .preprocess import DIHEDRAL_VIEWS, Preprocessing

SCHEMA_VERSION = 1
CLASSES = LABELS  # (engine.domain.labels: the one tuple of class names)
#: ``--precision`` / the app setting: the card's float32 file, its int8 file, or int8 where the card says it passed.
PRECISIONS = ("auto", "fp32", "int8")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class ModelError(Exception):
    """A model or its card cannot be used.  The message names the file and the problem."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    path: Path  # the card file
    name: str
    type: str  # "onnx" | "ensemble"
    display_name: str
    architecture: str
    version: str
    created: str
    threshold: float
    review_margin: float
    temperature: float = 1.0
    onnx_file: Path | None = None
    sha256: str | None = None
    input_name: str | None = None
    output_name: str | None = None
    output_kind: str = "logit"
    preprocessing: Preprocessing | None = None
    tta_views: tuple[int, ...] = (0,)  # dihedral views averaged (as logits) per cell
    members: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    recommended: bool = False  # the app opens with a recommended model (else an ensemble, else the first)
    int8_file: Path | None = None  # the quantised copy (card field "int8"), None when there is none
    int8_sha256: str | None = None
    precision: str = "fp32"  # what ``onnx_file`` holds: "int8" on the card :func:`for_precision` returns
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_ensemble(self) -> bool:
        return self.type == "ensemble"

    @property
    def int8_passed(self) -> bool:
        """The card names an int8 file and says it passed the gate (``metrics.int8_quantization.pass``)."""
        q = self.metrics.get("int8_quantization")
        return self.int8_file is not None and isinstance(q, dict) and q.get("pass") is True

    @property
    def provenance(self) -> dict[str, Any]:
        """What made the model (optional card field ``provenance``, written by ``leukoscan-train export``):
        ``command``, ``recipe``, ``commit``; {} for a card without it (every card before 4.x, or hand-written)."""
        p = self.raw.get("provenance")
        return p if isinstance(p, dict) else {}

    @property
    def input_size(self) -> tuple[int, int]:
        assert self.preprocessing is not None
        return self.preprocessing.height, self.preprocessing.width


def _need(d: dict, key: str, where: str, kind: type | tuple = object):
    if key not in d:
        raise ModelError(f"{where}: missing field '{key}'")
    v = d[key]
    if kind is not object and not isinstance(v, kind):
        raise ModelError(f"{where}: field '{key}' has the wrong type ({type(v).__name__})")
    return v


def parse_card(data: dict[str, Any], path: Path) -> ModelCard:
    """Validate a card's JSON content (not the ONNX file: see :func:`verify_onnx_file`)."""
    where = str(path)
    if not isinstance(data, dict):
        raise ModelError(f"{where}: a model card must be a JSON object")
    common = _common_fields(data, path, where)
    if common["type"] == "ensemble":
        return _ensemble_card(data, where, common)
    return _onnx_card(data, path, where, common)


def _common_fields(data: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    """The fields every card has (a single model's and an ensemble's), checked: schema version, name, type, the
    classes, the threshold and the review margin."""
    sv = data.get("schema_version", SCHEMA_VERSION)
    if sv != SCHEMA_VERSION:
        raise ModelError(f"{where}: unsupported schema_version {sv!r} (this LeukoScan reads {SCHEMA_VERSION})")
    name = _need(data, "name", where, str)
    if not _NAME_RE.match(name):
        raise ModelError(f"{where}: invalid model name {name!r} (lower-case letters, digits, . _ -)")
    ctype = data.get("type", "onnx")
    if ctype not in ("onnx", "ensemble"):
        raise ModelError(f"{where}: unknown model type {ctype!r} (expected 'onnx' or 'ensemble')")
    classes = data.get("classes", list(CLASSES))
    if list(classes) != list(CLASSES) or data.get("positive_class", "ALL") != "ALL":
        raise ModelError(f"{where}: classes must be {list(CLASSES)} with positive class ALL")
    threshold = float(_need(data, "threshold", where, (int, float)))
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"{where}: threshold must be between 0 and 1, got {threshold}")
    margin = float(data.get("review_margin", 0.0))
    if not 0.0 <= margin < 0.5:
        raise ModelError(f"{where}: review_margin must be in [0, 0.5), got {margin}")
    return dict(
        path=path,
        name=name,
        type=ctype,
        display_name=str(data.get("display_name", name)),
        architecture=str(data.get("architecture", "ensemble" if ctype == "ensemble" else "")),
        version=str(data.get("version", "")),
        created=str(data.get("created", "")),
        threshold=threshold,
        review_margin=margin,
        metrics=dict(data.get("metrics") or {}),
        training=dict(data.get("training") or {}),
        notes=str(data.get("notes", "")),
        recommended=_recommended(data, where),
        raw=data,
    )


def _ensemble_card(data: dict[str, Any], where: str, common: dict[str, Any]) -> ModelCard:
    members = _need(data, "members", where, list)
    if len(members) < 2 or not all(isinstance(m, str) for m in members):
        raise ModelError(f"{where}: an ensemble needs a list of at least two member names")
    if len(set(members)) != len(members):
        raise ModelError(f"{where}: ensemble members must be distinct, got {members}")
    return ModelCard(members=tuple(members), **common)


def _onnx_card(data: dict[str, Any], path: Path, where: str, common: dict[str, Any]) -> ModelCard:
    """A single model's card: its ONNX file and sha256, the input and output it declares, how cells are prepared."""
    temperature = float(data.get("temperature", 1.0))
    if not temperature > 0:
        raise ModelError(f"{where}: temperature must be > 0, got {temperature}")
    onnx_name = _need(data, "onnx_file", where, str)
    sha = _need(data, "sha256", where, str).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ModelError(f"{where}: sha256 must be 64 hex digits")
    inp = _input_block(data, where)
    out = data.get("output") or {}
    kind = out.get("kind", "logit")
    if kind not in ("logit", "probability"):
        raise ModelError(f"{where}: output kind must be 'logit' or 'probability', got {kind!r}")
    try:
        pre = Preprocessing.from_dict(
            data.get("preprocessing") or {},
            height=_need(inp, "height", where + " input", int),
            width=_need(inp, "width", where + " input", int),
        )
    except ValueError as exc:
        raise ModelError(f"{where}: bad preprocessing: {exc}") from None
    int8_file, int8_sha = _parse_int8(data.get("int8"), path, onnx_name, where)
    return ModelCard(
        tta_views=_parse_tta(data.get("test_time_augmentation"), where),
        int8_file=int8_file,
        int8_sha256=int8_sha,
        onnx_file=(path.parent / onnx_name),
        sha256=sha,
        input_name=inp.get("name"),
        output_name=out.get("name"),
        output_kind=kind,
        temperature=temperature,
        preprocessing=pre,
        **common,
    )


def _input_block(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The card's ``input``: NHWC float32 RGB in 0-255 (normalisation belongs in the graph)."""
    inp = _need(data, "input", where, dict)
    for k, want in (("layout", "NHWC"), ("dtype", "float32"), ("channels", 3)):
        if inp.get(k, want) != want:
            raise ModelError(f"{where}: input {k} must be {want!r}, got {inp.get(k)!r}")
    vr = inp.get("value_range", [0, 255])
    if list(vr) != [0, 255]:
        raise ModelError(f"{where}: input value_range must be [0, 255] (normalisation belongs in the graph)")
    return inp


def _parse_int8(block: Any, path: Path, onnx_name: str, where: str) -> tuple[Path | None, str | None]:
    if block is None:
        return None, None
    if not isinstance(block, dict):
        raise ModelError(f'{where}: int8 must be an object like {{"onnx_file": "x.int8.onnx", "sha256": "..."}}')
    name = _need(block, "onnx_file", where + " int8", str)
    sha = _need(block, "sha256", where + " int8", str).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ModelError(f"{where}: int8 sha256 must be 64 hex digits")
    if name == onnx_name:
        raise ModelError(f"{where}: the int8 file must not be the float32 file ({name})")
    return path.parent / name, sha


def for_precision(card: ModelCard, precision: str) -> ModelCard:
    """The card of what runs at ``precision`` (:data:`PRECISIONS`): ``fp32`` the card itself; ``int8`` a copy
    whose ``onnx_file``/``sha256`` are the int8 file's (ModelError when the card has none that passed the gate);
    ``auto`` int8 when the card says it passed and the file is there, else fp32.  An ensemble: unchanged (its
    members are resolved one by one)."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if card.is_ensemble or precision == "fp32":
        return card
    usable = card.int8_passed and card.int8_file is not None and card.int8_file.is_file()
    if precision == "auto" and not usable:
        return card
    if not usable:
        why = (
            "has no int8 file"
            if card.int8_file is None
            else "does not say its int8 file passed the gate (metrics.int8_quantization.pass)"
            if not card.int8_passed
            else f"names {card.int8_file.name}, which is missing"
        )
        raise ModelError(f"int8 precision: model '{card.name}' {why}; use fp32 or auto")
    return replace(card, onnx_file=card.int8_file, sha256=card.int8_sha256, precision="int8")


def _recommended(data: dict, where: str) -> bool:
    value = data.get("recommended", False)
    if not isinstance(value, bool):
        raise ModelError(f"{where}: recommended must be true or false, got {value!r}")
    return value


def _parse_tta(tta: Any, where: str) -> tuple[int, ...]:
    if tta is None:
        return (0,)
    if not isinstance(tta, dict):
        raise ModelError(f'{where}: test_time_augmentation must be an object like {{"views": [0, 1, 2, 3]}}')
    views = tta.get("views")
    if (
        not isinstance(views, list)
        or not views
        or not all(isinstance(v, int) and not isinstance(v, bool) and v in DIHEDRAL_VIEWS for v in views)
        or len(set(views)) != len(views)
    ):
        raise ModelError(
            f"{where}: test_time_augmentation views must be distinct integers 0-7 (dihedral views), got {views!r}"
        )
    combine = tta.get("combine", "mean_logit")
    if combine != "mean_logit":
        raise ModelError(f"{where}: test_time_augmentation combine must be 'mean_logit', got {combine!r}")
    return tuple(views)


def load_card(path: str | Path) -> ModelCard:
    """Read and validate a card file.  Raises :class:`ModelError` naming the file and the problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{p}: model card not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{p}: cannot read model card: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{p}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return parse_card(data, p)


def verify_onnx_file(card: ModelCard) -> None:
    """The ONNX file exists and matches the card's sha256."""
    if card.is_ensemble:
        return
    assert card.onnx_file is not None
    if not card.onnx_file.is_file():
        raise ModelError(f"{card.onnx_file}: ONNX file named by {card.path.name} is missing")
    _check_sha(card, sha256_file(card.onnx_file))


def verify_onnx_bytes(card: ModelCard, data: bytes) -> None:
    """``data`` (the ONNX file's content, read once to build the session) matches the card's sha256."""
    assert card.onnx_file is not None
    _check_sha(card, hashlib.sha256(data).hexdigest())


def _check_sha(card: ModelCard, actual: str) -> None:
    assert card.onnx_file is not None and card.sha256 is not None
    if actual != card.sha256:
        raise ModelError(
            f"{card.onnx_file}: sha256 mismatch (card {card.path.name} says {card.sha256[:12]}..., "
            f"file is {actual[:12]}...): the model file was changed or corrupted"
        )
