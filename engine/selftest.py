"""Headless self-test: ``LeukoScan --self-test`` (also ``python -m engine.selftest``).

Loads every registered model (bundled ``resources/models`` and the user models folder), classifies
the bundled sample cells listed in ``resources/samples/manifest.csv`` (columns
``file,expected_class,subject``) and checks each model's decision against the expected class.

It answers one question: *does this installation (bundle, venv, workstation) still decode images,
preprocess them and run the models the way the release did?*  The sample cells were chosen because
the shipped models classify them correctly and far from the decision threshold, so a wrong class or a
cell falling into the review band means something is broken (missing image decoder, wrong
preprocessing, corrupted or replaced model, broken onnxruntime provider).  Six cells are a
regression check, **not** an accuracy measurement: see the model cards for validation metrics.

Output: detail lines on stderr, then exactly one verdict line on stdout, starting with
``LeukoScan <version> self-test: PASS`` or ``... FAIL``.  Exit status 0 on PASS, 1 on FAIL.
``--output FILE`` also writes the verdict and details to a file (for windowed Windows builds, which
have no console).

This module follows the engine rules: no Qt, no TensorFlow.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .card import CLASSES, ModelError

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("file", "expected_class", "subject")
#: Environment variable the GPU bundle's runtime hook fills with what it did to make CUDA load.
GPU_PRELOAD_ENV = "LEUKOSCAN_GPU_PRELOAD"


class SelfTestError(Exception):
    """The self-test cannot even start (no samples, bad manifest, engine incomplete)."""


@dataclass(frozen=True)
class Sample:
    path: Path
    expected: str  # "ALL" | "HEM"
    subject: str


@dataclass
class ModelOutcome:
    name: str
    ok: bool = True
    device: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    min_margin: float = math.inf
    checked: int = 0

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)


def app_version() -> str:
    """The LeukoScan version: installed distribution metadata (pyproject), else the package constant."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("leukoscan")
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover - stdlib
        pass
    from . import __version__

    return __version__


def default_samples_dir() -> Path:
    """``resources/samples`` (source tree or bundle; ``LEUKOSCAN_RESOURCES_DIR`` overrides)."""
    from .paths import resources_dir

    return resources_dir() / "samples"


def read_manifest(samples_dir: str | Path) -> list[Sample]:
    """Parse ``manifest.csv``; every listed file must exist.  Raises :class:`SelfTestError`."""
    sdir = Path(samples_dir)
    mpath = sdir / MANIFEST_NAME
    try:
        text = mpath.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SelfTestError(f"sample manifest not found: {mpath}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SelfTestError(f"cannot read sample manifest {mpath}: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not set(MANIFEST_COLUMNS) <= set(reader.fieldnames):
        raise SelfTestError(f"{mpath}: header must contain {', '.join(MANIFEST_COLUMNS)}")
    samples: list[Sample] = []
    for lineno, row in enumerate(reader, start=2):
        name = (row.get("file") or "").strip()
        expected = (row.get("expected_class") or "").strip().upper()
        if not name:
            raise SelfTestError(f"{mpath} line {lineno}: empty file name")
        if expected not in CLASSES:
            raise SelfTestError(f"{mpath} line {lineno}: expected_class must be ALL or HEM, got {expected!r}")
        p = sdir / name
        if not p.is_file():
            raise SelfTestError(f"{mpath} line {lineno}: sample file {name} is missing")
        samples.append(Sample(p, expected, (row.get("subject") or "").strip()))
    if not samples:
        raise SelfTestError(f"{mpath}: no samples listed")
    if {s.expected for s in samples} != set(CLASSES):
        raise SelfTestError(f"{mpath}: samples of both classes (ALL and HEM) are needed")
    return samples


class Log(Protocol):
    """Where the detail lines go: a text stream, or the entry point's tee (stderr and a kept copy)."""

    def write(self, s: str, /) -> int: ...

    def flush(self) -> None: ...


def check_model(registry, card, samples: Sequence[Sample], device: str, log: Log) -> ModelOutcome:
    """Load one model and classify the samples with it (through the classification operator, as every front end
    does); never raises for a model problem."""
    from .run import RunSpec, local, operator

    out = ModelOutcome(card.name)
    try:
        clf = registry.load(card.name, device=device)
    except ModelError as exc:
        out.fail(f"cannot load: {exc}")
        return out
    out.device = str(getattr(clf, "device_label", "?"))
    for w in getattr(clf, "warnings", []) or []:
        out.notes.append(str(w))
    if device == "cuda" and out.device != "CUDA":
        out.fail(f"CUDA was required but the model runs on {out.device}")
    items = _scanned(samples, out)
    by_path = {str(item.path): s for item, s in items}
    t0 = time.perf_counter()
    collected = _Collect()
    try:
        operator.run(RunSpec.of([item for item, _ in items], None, batch_size=8), local(clf), [collected])
    except ModelError as exc:
        out.fail(f"inference failed: {exc}")
        return out
    dt = time.perf_counter() - t0
    results = collected.results
    if len(results) != len(items):
        out.fail(f"the run returned {len(results)} results for {len(items)} cells")
    for r in results:
        sample = by_path.get(str(r.path))
        if sample is None:
            out.fail(f"{Path(r.path).name}: result for a file that was not asked for")
            continue
        out.checked += 1
        _check_result(out, card.name, clf, r, sample, log)
    print(
        f"  {card.name}: {out.checked} cells on {out.device} in {dt:.2f} s"
        + (f"; {'; '.join(out.notes)}" if out.notes else ""),
        file=log,
    )
    return out


class _Collect:
    """The self-test's sink: every result of the run, in order (checked against the manifest afterwards)."""

    def __init__(self) -> None:
        self.results: list = []

    def add(self, batch) -> None:
        self.results.extend(batch.results)

    def finish(self, complete: bool) -> None:
        """Nothing to close: the results are checked once the run is over."""


def _scanned(samples: Sequence[Sample], out: ModelOutcome) -> list:
    """(scan item, sample) of every sample :func:`engine.pipeline.scan` takes for an image (the rest: problems)."""
    from .pipeline import scan

    items = []
    for s in samples:
        found = scan([s.path])
        if len(found) != 1:
            out.fail(f"{s.path.name}: not recognised as an image file by scan()")
            continue
        items.append((found[0], s))
    return items


def _check_result(out: ModelOutcome, model: str, clf, r, sample: Sample, log: Log) -> None:
    """One sample's result: classified, a valid P(ALL), the expected class, outside the review band."""
    from .pipeline import decide

    name = Path(r.path).name
    if not r.ok:
        out.fail(f"{name}: could not be classified: {r.error}")
        return
    p = r.p_all
    if p is None or not math.isfinite(p) or not 0.0 <= p <= 1.0:
        out.fail(f"{name}: invalid P(ALL) {p!r}")
        return
    prediction, flagged = decide(p, clf.threshold, clf.review_margin, r.members_disagree)
    out.min_margin = min(out.min_margin, abs(p - clf.threshold))
    members = ""
    if r.member_p:
        members = " (" + ", ".join(f"{k} {v:.3f}" for k, v in sorted(r.member_p.items())) + ")"
    print(
        f"  {model:<14} {name:<34} expected {sample.expected}  P(ALL) {p:.4f}{members}"
        f" -> {prediction}{'  [flagged for review]' if flagged else ''}",
        file=log,
    )
    if prediction != sample.expected:
        out.fail(f"{name}: expected {sample.expected}, got {prediction} (P(ALL) {p:.3f})")
    elif flagged:
        out.fail(
            f"{name}: {prediction} as expected but inside the review band "
            f"(P(ALL) {p:.3f}, threshold {clf.threshold:.2f} +/- {clf.review_margin:.2f}): outputs have drifted"
        )


def run(
    models_dirs: Sequence[str | Path] | None = None,
    samples_dir: str | Path | None = None,
    device: str = "auto",
    log: Log | None = None,
) -> tuple[bool, str]:
    """Run the self-test.  Returns ``(passed, verdict_line)``; detail lines go to ``log``."""
    log = log if log is not None else sys.stderr
    t0 = time.perf_counter()
    head = f"LeukoScan {app_version()} self-test:"
    try:
        from .registry import Registry

        samples = read_manifest(samples_dir if samples_dir is not None else default_samples_dir())
        registry = Registry([Path(d) for d in models_dirs] if models_dirs else None)
        cards = list(registry.cards())
    except SelfTestError as exc:
        return False, f"{head} FAIL - {exc}"
    except ImportError as exc:
        return False, f"{head} FAIL - engine incomplete: {exc}"
    except ModelError as exc:
        return False, f"{head} FAIL - {exc}"

    preload = os.environ.get(GPU_PRELOAD_ENV)
    if preload:
        print(f"GPU runtime hook: {preload}", file=log)
    n_all = sum(s.expected == "ALL" for s in samples)
    print(
        f"{len(samples)} sample cells ({n_all} ALL, {len(samples) - n_all} HEM) from "
        f"{len({s.subject for s in samples})} subjects; models: {', '.join(c.name for c in cards) or 'none'}",
        file=log,
    )
    failures: list[str] = [f"invalid model card: {p}" for p in registry.problems]
    if not cards:
        failures.append("no usable model found")
    outcomes = [check_model(registry, c, samples, device, log) for c in cards]
    for o in outcomes:
        failures.extend(f"{o.name}: {p}" for p in o.problems)

    elapsed = time.perf_counter() - t0
    devices = sorted({o.device for o in outcomes if o.device}) or ["-"]
    if failures:
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        return False, f"{head} FAIL - {'; '.join(failures[:3])}{more} [{'/'.join(devices)}, {elapsed:.1f} s]"
    margin = min(o.min_margin for o in outcomes)
    cuda_note = ""
    notes = sorted({n for o in outcomes for n in o.notes})
    if notes:
        cuda_note = f"; note: {notes[0]}"
    return True, (
        f"{head} PASS - {len(outcomes)} model(s) x {len(samples)} sample cells classified as expected "
        f"(closest to threshold: {margin:.2f}) [{'/'.join(devices)}, {elapsed:.1f} s]{cuda_note}"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="LeukoScan --self-test",
        description="Check that every installed model classifies the bundled sample cells as expected.",
    )
    p.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--models-dir",
        action="append",
        metavar="DIR",
        help="model folder to test instead of the default ones (bundled + user); repeatable",
    )
    p.add_argument("--samples-dir", metavar="DIR", help="folder with manifest.csv (default: bundled samples)")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: CUDA when available, else CPU; cuda: FAIL unless the models really run on CUDA",
    )
    p.add_argument("--output", metavar="FILE", help="also write the details and verdict to FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdict line")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``LeukoScan --self-test`` and ``python -m engine.selftest``; returns 0/1."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))

    class _Tee:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def write(self, s: str) -> int:
            self.lines.append(s)
            if not args.quiet and sys.stderr is not None:
                sys.stderr.write(s)
            return len(s)

        def flush(self) -> None:
            if sys.stderr is not None:
                sys.stderr.flush()

    tee = _Tee()
    try:
        passed, verdict = run(args.models_dir, args.samples_dir, args.device, log=tee)
    except Exception as exc:  # the verdict line must always come out
        passed, verdict = False, f"LeukoScan {app_version()} self-test: FAIL - unexpected error: {exc!r}"
    if sys.stdout is not None:
        print(verdict, flush=True)
    if args.output:
        try:
            Path(args.output).write_text("".join(tee.lines) + verdict + "\n", encoding="utf-8")
        except OSError as exc:
            if sys.stderr is not None:
                print(f"cannot write {args.output}: {exc}", file=sys.stderr)
            passed = False
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
