"""A loaded model (or ensemble) ready to score preprocessed cells: :class:`Classifier`.

One ``onnxruntime.InferenceSession`` per ONNX model, created once and reused for every batch (the
registry shares sessions between a model and the ensembles that contain it).

Calibration: calibrated P(ALL) = sigmoid(logit / temperature) (card ``temperature``; an output of kind
``probability`` is turned back into a logit first).  An ensemble's P(ALL) is the mean of its members'
calibrated P(ALL); its members "disagree" on a cell when their own decisions (each at its own
threshold) differ.  A raw output that is NaN or +-Inf gives that cell a NaN P(ALL) (its error is
:data:`NON_FINITE`), and a model whose output on a black test image is not finite does not load.

Execution providers: ``device="cpu"`` uses the CPU.  ``"auto"`` and ``"cuda"`` ask for CUDA when the
installed onnxruntime offers it, then check ``session.get_providers()`` — onnxruntime-gpu lists CUDA as
available even without a usable GPU and silently falls back to the CPU.  The provider actually used is
:attr:`Classifier.active_provider`; any fallback the user did not ask for is a human-readable string in
:attr:`Classifier.warnings` (all of them: :attr:`Classifier.device_fallback`) and a logged warning, never silent.
The CLI refuses an explicit ``--device cuda`` that fell back (:func:`require_cuda`, exit 3); ``auto`` falls back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from .card import ModelCard, ModelError, verify_onnx_bytes
from .offline import disable_telemetry
from .preprocess import Preprocessing, dihedral

log = logging.getLogger(__name__)
disable_telemetry()  # onnxruntime is loaded now: its API switch too (engine/__init__ set the variable)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
#: The error of a cell whose model output is NaN or +-Inf (its P(ALL) is NaN, see Member.logit).
NON_FINITE = "model output not finite"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def to_logit(raw: np.ndarray, kind: str) -> np.ndarray:
    """Raw model output (one value per cell, ``kind`` "logit" or "probability") -> logit of ALL, float64."""
    raw = np.asarray(raw, dtype=np.float64)
    if kind == "probability":
        p = np.clip(raw, 1e-12, 1.0 - 1e-12)
        raw = np.log(p) - np.log1p(-p)
    return raw


def calibrate(raw: np.ndarray, kind: str, temperature: float) -> np.ndarray:
    """Raw model output (one value per cell) -> calibrated P(ALL), float64."""
    return _sigmoid(to_logit(raw, kind) / float(temperature))


@dataclass
class Member:
    """One ONNX model with its live session."""

    card: ModelCard
    session: ort.InferenceSession
    input_name: str
    output_name: str
    spec: Preprocessing
    active_provider: str
    fixed_batch: int | None = None  # when the graph's batch dimension is not dynamic
    warnings: list[str] = field(default_factory=list)

    def raw(self, batch: np.ndarray, run_options: ort.RunOptions | None = None) -> np.ndarray:
        """float32 NHWC batch -> the output column, shape (N,)."""
        n = batch.shape[0]
        step = self.fixed_batch or n
        outs = []
        for i in range(0, n, step):
            part = batch[i : i + step]
            pad = 0
            if self.fixed_batch and part.shape[0] < self.fixed_batch:
                pad = self.fixed_batch - part.shape[0]
                part = np.concatenate([part, np.zeros((pad,) + part.shape[1:], part.dtype)])
            (y,) = self.session.run([self.output_name], {self.input_name: part}, run_options)
            y = np.asarray(y).reshape(part.shape[0], -1)
            if y.shape[1] != 1:
                raise ModelError(
                    f"{self.card.onnx_file}: output '{self.output_name}' has {y.shape[1]} values per cell; "
                    "a LeukoScan model outputs one (the logit or probability of ALL)"
                )
            outs.append(y[: part.shape[0] - pad, 0])
        return np.concatenate(outs) if outs else np.zeros((0,), np.float32)

    def logit(self, batch: np.ndarray, run_options: ort.RunOptions | None = None) -> np.ndarray:
        """Uncalibrated logit of ALL per cell, float64; the mean over the card's test-time views.

        NaN for a cell whose raw output (in any view) is NaN or +-Inf: an infinite logit would
        calibrate to a confident P(ALL) of exactly 1 or 0, so such a cell gets no score at all."""
        total = np.zeros(batch.shape[0], dtype=np.float64)
        broken = np.zeros(batch.shape[0], dtype=bool)
        for k in self.card.tta_views:  # one view at a time: peak memory as without augmentation
            raw = self.raw(batch if k == 0 else dihedral(batch, k), run_options)
            broken |= ~np.isfinite(raw)
            with np.errstate(invalid="ignore"):  # Inf - Inf across views: masked below
                total += to_logit(raw, self.card.output_kind)
        total /= len(self.card.tta_views)
        total[broken] = np.nan
        return total

    def p_all(self, batch: np.ndarray, run_options: ort.RunOptions | None = None) -> np.ndarray:
        return calibrate(self.logit(batch, run_options), "logit", self.card.temperature)


def _session_options(threads: int | None) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    so.intra_op_num_threads = int(threads or default_threads())
    so.log_severity_level = 3  # errors only; provider fallbacks are reported by us
    return so


def load_member(card: ModelCard, device: str = "auto", threads: int | None = None) -> Member:
    """Verify the ONNX file against its card and open a session on ``device``.  Raises ModelError."""
    if card.is_ensemble:
        raise ModelError(f"{card.path}: an ensemble card is not a single model")
    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    return member_from_bytes(card, read_onnx_bytes(card), device, threads)


def read_onnx_bytes(card: ModelCard) -> bytes:
    """The content of the card's ONNX file.  Raises ModelError naming the file."""
    assert card.onnx_file is not None
    try:
        return card.onnx_file.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{card.onnx_file}: ONNX file named by {card.path.name} is missing") from None
    except OSError as exc:
        raise ModelError(f"{card.onnx_file}: cannot read ONNX file: {exc.strerror or exc}") from None


def member_from_bytes(card: ModelCard, data: bytes, device: str = "auto", threads: int | None = None) -> Member:
    """:func:`load_member` on ONNX bytes read elsewhere (a Ray worker gets them from the driver and has
    no models folder).  The bytes are checked against the card's sha256 first.  Raises ModelError."""
    if card.is_ensemble:
        raise ModelError(f"{card.path}: an ensemble card is not a single model")
    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    assert card.onnx_file is not None and card.preprocessing is not None
    verify_onnx_bytes(card, data)  # what is hashed is exactly what is loaded

    warnings: list[str] = []
    available = ort.get_available_providers()
    want_cuda = device in ("auto", "cuda") and CUDA in available
    if device == "cuda" and CUDA not in available:
        warnings.append(
            "CUDA was requested but the installed onnxruntime has no CUDA provider "
            f"(it offers {', '.join(available)}; the GPU route: make venv-gpu, docs/gpu.md); running on the CPU"
        )
    providers = [CUDA, CPU] if want_cuda else [CPU]
    so = _session_options(threads)
    try:
        session = ort.InferenceSession(data, sess_options=so, providers=providers)
    except Exception as exc:
        if not want_cuda:
            raise ModelError(f"{card.onnx_file}: onnxruntime cannot load the model: {exc}") from None
        warnings.append(f"CUDA session could not be created ({_first_line(exc)}); running on the CPU")
        want_cuda = False  # reported; not a second, silent fallback
        try:
            session = ort.InferenceSession(data, sess_options=_session_options(threads), providers=[CPU])
        except Exception as exc2:
            raise ModelError(f"{card.onnx_file}: onnxruntime cannot load the model: {exc2}") from None
    del data
    active = session.get_providers()[0]
    if want_cuda and active != CUDA:
        warnings.append(
            f"CUDA is offered by onnxruntime but could not be used (no usable GPU, driver or CUDA/cuDNN "
            f"libraries); {card.name} runs on the CPU ({active})"
        )
    for msg in warnings:
        log.warning("%s: %s", card.name, msg)

    input_name, output_name, fixed_batch = _check_io(card, session)
    member = Member(
        card=card,
        session=session,
        input_name=input_name,
        output_name=output_name,
        spec=card.preprocessing,
        active_provider=active,
        fixed_batch=fixed_batch,
        warnings=warnings,
    )
    # One real run: catches an output that is not one finite value per cell, and warms up the provider.
    h, w = card.input_size
    try:
        probe = member.raw(np.zeros((1, h, w, 3), np.float32))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{card.onnx_file}: test inference failed: {_first_line(exc)}") from None
    if probe.shape != (1,):
        raise ModelError(f"{card.onnx_file}: expected one output value per cell, got shape {probe.shape}")
    if not np.isfinite(probe).all():
        raise ModelError(f"{card.onnx_file}: {NON_FINITE} on a black test image ({probe[0]}): the model is broken")
    return member


def require_cuda(classifier: Classifier) -> None:
    """An explicit ``--device cuda`` runs on CUDA or not at all: ModelError saying why when any member of
    ``classifier`` fell back to the CPU (the CLI exits 3; the app shows the fallback in its status bar)."""
    if classifier.device_label != "CUDA":
        raise ModelError(
            f"--device cuda: {classifier.name} cannot run on CUDA: "
            f"{classifier.device_fallback or 'it runs on ' + classifier.active_provider}. Install the GPU route "
            "(make venv-gpu; docs/gpu.md), check the NVIDIA driver (nvidia-smi), or use --device auto"
        )


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else exc.__class__.__name__


def _check_io(card: ModelCard, session: ort.InferenceSession) -> tuple[str, str, int | None]:
    where = f"{card.onnx_file}"
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{where}: expected one input tensor, the model has {len(inputs)}")
    inp = inputs[0]
    if card.input_name and inp.name != card.input_name:
        raise ModelError(
            f"{where}: input tensor is named '{inp.name}', the card {card.path.name} says '{card.input_name}'"
        )
    if inp.type != "tensor(float)":
        raise ModelError(f"{where}: input must be float32, the model takes {inp.type}")
    shape = list(inp.shape)
    h, w = card.input_size
    if len(shape) != 4:
        raise ModelError(f"{where}: input must be NHWC (4 dimensions), the model's is {shape}")
    want = [h, w, 3]
    for got, exp, label in zip(shape[1:], want, ("height", "width", "channels")):
        if isinstance(got, int) and got != exp:
            raise ModelError(
                f"{where}: input shape {shape} disagrees with the card {card.path.name} "
                f"({label} {exp}; expected [batch, {h}, {w}, 3] NHWC)"
            )
    fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    if card.output_name:
        if card.output_name not in names:
            raise ModelError(f"{where}: no output named '{card.output_name}' (the model has {names})")
        out_name = card.output_name
    elif len(outputs) == 1:
        out_name = outputs[0].name
    else:
        raise ModelError(f"{where}: the model has several outputs {names}; the card must name one")
    return inp.name, out_name, fixed_batch


@dataclass
class Prediction:
    """Scores of one batch: arrays of length N in the batch's cell order."""

    p_all: np.ndarray  # calibrated P(ALL), float64; NaN where a model output was not finite (NON_FINITE)
    member_p: dict[str, np.ndarray]  # ensemble only: member name -> its calibrated P(ALL) (NaN likewise)
    members_disagree: np.ndarray  # bool; always False for a single model


class Classifier:
    """A model or an ensemble, ready to score batches.  Build it with ``Registry.load``."""

    def __init__(self, card: ModelCard, members: Sequence[Member]):
        if not members:
            raise ModelError(f"{card.path}: no members")
        self.card = card
        self.members: tuple[Member, ...] = tuple(members)
        self.name = card.name
        self.display_name = card.display_name
        self.version = card.version
        self.threshold = card.threshold
        self.review_margin = card.review_margin
        self.member_names: tuple[str, ...] = tuple(m.card.name for m in self.members) if card.is_ensemble else ()
        provs = list(dict.fromkeys(m.active_provider for m in self.members))
        self.active_provider = "+".join(provs)
        self.device_label = "+".join(p.replace("ExecutionProvider", "") for p in provs)  # "CPU", "CUDA"
        #: "fp32" or "int8" (an ensemble whose members run at different precisions: "fp32+int8")
        self.precision = "+".join(dict.fromkeys(m.card.precision for m in self.members))
        self.warnings: list[str] = [w for m in self.members for w in m.warnings]
        #: why the model runs on the CPU although CUDA was asked for or offered ("" when it did not fall back)
        self.device_fallback = "; ".join(dict.fromkeys(self.warnings))
        #: Distinct preprocessing specs, in member order: decode a file once, preprocess once per spec.
        self.preprocessings: tuple[Preprocessing, ...] = tuple(dict.fromkeys(m.spec for m in self.members))

    def __repr__(self) -> str:
        return f"Classifier({self.name!r} {self.version}, {self.active_provider})"

    @property
    def is_ensemble(self) -> bool:
        return bool(self.member_names)

    def predict(
        self, inputs: Mapping[Preprocessing, np.ndarray], run_options: ort.RunOptions | None = None
    ) -> Prediction:
        """``inputs``: for each spec in :attr:`preprocessings`, the float32 (N, h, w, 3) batch."""
        ps = [m.p_all(np.ascontiguousarray(inputs[m.spec], dtype=np.float32), run_options) for m in self.members]
        if not self.is_ensemble:
            p = ps[0]
            return Prediction(p, {}, np.zeros(p.shape, dtype=bool))
        stacked = np.stack(ps)
        votes = np.stack([p >= m.card.threshold for p, m in zip(ps, self.members)])
        disagree = np.asarray(votes.any(axis=0) & ~votes.all(axis=0))
        member_p = {m.card.name: p for m, p in zip(self.members, ps)}
        return Prediction(stacked.mean(axis=0), member_p, disagree)

    def predict_batch(self, batch: np.ndarray) -> Prediction:
        """Single-spec convenience (a single model, or an ensemble whose members share one spec)."""
        if len(self.preprocessings) != 1:
            raise ValueError("this ensemble's members need different inputs: use predict()")
        return self.predict({self.preprocessings[0]: batch})

    @staticmethod
    def run_options() -> ort.RunOptions:
        """A RunOptions whose ``terminate`` flag, set from another thread, aborts a running batch."""
        return ort.RunOptions()


def default_threads() -> int:
    """onnxruntime's intra-op threads when none are asked for: the physical cores this process may use (a second
    hyper-thread per core only contends for the same vector units in a convolution)."""
    return physical_cores()


def physical_cores(cpuinfo: str | None = None, allowed: set[int] | None = None) -> int:
    """Distinct (package, core) pairs among the CPUs this process may run on (``os.sched_getaffinity``), read
    from /proc/cpuinfo; the usable logical CPUs where that file or its core ids are missing (not Linux, most
    ARM boards).  ``cpuinfo``/``allowed``: for tests."""
    if allowed is None:
        try:
            allowed = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            allowed = set(range(os.cpu_count() or 1))
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read()
        except OSError:
            cpuinfo = ""
    cores: set[tuple[str, str]] = set()
    for block in cpuinfo.split("\n\n"):
        pairs = (line.partition(":") for line in block.splitlines())
        fields = {k.strip(): v.strip() for k, sep, v in pairs if sep}
        if "processor" not in fields or "core id" not in fields:
            continue
        try:
            cpu = int(fields["processor"])
        except ValueError:
            continue
        if cpu in allowed:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return max(1, len(cores) or len(allowed))
