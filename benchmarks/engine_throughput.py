"""Engine throughput on real C-NMC cells: pure onnxruntime vs the streaming pipeline vs the CLI.

For each model (every registered model and ensemble; plus the tiny test models with --tiny, or when
none is registered) on the same N real cells written as 24-bit BMP (what labs have):

- ``pure ORT``: the cells decoded and preprocessed beforehand, only ``session.run`` timed (all members
  of an ensemble, one after the other) — the ceiling;
- ``pipeline``: ``engine.pipeline.classify`` on the files, model already loaded (read + sha256 +
  decode + preprocess in worker threads, overlapping batched inference);
- ``CLI``: ``leukoscan-cli classify`` end to end in-process (registry, model load, scan, pipeline,
  CSV report written);
- ``keras``: ``model.predict`` of the same network where TensorFlow is installed and the Keras model is
  found (the tiny models are rebuilt in Keras exactly; trained models: ``--keras NAME=PATH``, a card
  ``training.keras_model`` path, ``<name>.keras`` beside the card, or ``runs/<name>/final.keras``).

Goal: pipeline >= 0.90 x pure.  Also prints scan time for 20,000 files and the resident memory of a
long run (flat = bounded prefetch).  Usage: ``python benchmarks/engine_throughput.py [--n 128] [--tiny] [--memory-files 20000]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from rss import rss_mb

from engine import cli
from engine.pipeline import classify, scan
from engine.preprocess import dihedral, preprocess_file
from engine.registry import Registry, default_dirs

SHARED = REPO.parent / "shared" / "data" / "C-NMC_Leukemia" / "training_data"


def real_cells(n: int) -> list[Path]:
    if SHARED.is_dir():
        alls = sorted(SHARED.glob("fold_*/all/*.webp"))
        hems = sorted(SHARED.glob("fold_*/hem/*.webp"))
        rng = np.random.default_rng(0)
        k_all = min(len(alls), round(n * 0.68))
        pick = [alls[i] for i in rng.choice(len(alls), k_all, replace=False)]
        pick += [hems[i] for i in rng.choice(len(hems), min(len(hems), n - k_all), replace=False)]
        return pick
    print(f"(no {SHARED}: using the 8 cells of tests/data repeated)")
    src = sorted((REPO / "tests" / "data" / "cells").glob("*.webp"))
    return [src[i % len(src)] for i in range(n)]


def write_bmps(cells: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(cells):
        with Image.open(c) as im:
            im.convert("RGB").save(dest / f"{i:05d}_{c.stem}.bmp")
    return dest


def bench_scan(tmp: Path, n_files: int = 20_000) -> None:
    root = tmp / "scan20k"
    src = tmp / "one.bmp"
    Image.new("RGB", (4, 4)).save(src)
    for i in range(n_files):
        d = root / f"case{i // 500:03d}"
        if i % 500 == 0:
            d.mkdir(parents=True)
        os.link(src, d / f"cell_{i}.bmp")
    t0 = time.perf_counter()
    items = scan([root])
    dt = time.perf_counter() - t0
    print(f"scan: {len(items):,} files in {len(items) // 500} folders listed in {dt:.2f} s (goal < 1 s)")


def pure_ort(clf, files: list[Path], batch: int) -> tuple[float, int]:
    """cells/s of session.run alone (once per test-time view of the card), inputs decoded and turned beforehand."""
    per_spec = {s: np.stack([preprocess_file(f, s) for f in files]) for s in clf.preprocessings}
    views = {m.card.name: {k: dihedral(per_spec[m.spec], k) for k in m.card.tta_views} for m in clf.members}
    for m in clf.members:  # warm-up
        m.session.run([m.output_name], {m.input_name: per_spec[m.spec][:batch]})
    t0 = time.perf_counter()
    for i in range(0, len(files), batch):
        for m in clf.members:
            for x in views[m.card.name].values():
                m.session.run([m.output_name], {m.input_name: x[i : i + batch]})
    dt = time.perf_counter() - t0
    del per_spec
    return len(files) / dt, len(files)


def pipeline(clf, folder: Path, batch: int, workers: int | None) -> float:
    items = scan([folder])
    t0 = time.perf_counter()
    n = sum(1 for r in classify(items, clf, batch_size=batch, threads=workers) if r.status == "ok")
    dt = time.perf_counter() - t0
    assert n == len(items), f"{len(items) - n} cells failed"
    return len(items) / dt


def cli_run(name: str, folder: Path, out: Path, extra_dirs: list[str], batch: int, threads: int | None) -> float:
    args = ["classify", str(folder), "--model", name, "--out", str(out), "--no-progress", "--batch-size", str(batch)]
    for d in extra_dirs:
        args += ["--models-dir", d]
    if threads:
        args += ["--threads", str(threads)]
    n = len(scan([folder]))
    t0 = time.perf_counter()
    rc = cli.main(args)
    dt = time.perf_counter() - t0
    assert rc == 0, f"CLI exit {rc}"
    return n / dt


def keras_model_for(card, keras_paths: dict[str, str]):
    """A Keras model computing the same function, or None (and why)."""
    try:
        import keras
    except ImportError:
        return None, "TensorFlow/Keras not installed"
    import keras

    if card.architecture.startswith("TinyMeanColour"):
        from tinymodels import tiny_weights

        seed = int(str(card.training.get("initial_weights", "seed=0")).split("seed=")[-1].rstrip(")"))
        w, b = tiny_weights(seed)
        h, wd = card.input_size
        inp = keras.Input((h, wd, 3))
        x = keras.layers.Rescaling(1 / 255.0)(inp)
        x = keras.layers.GlobalAveragePooling2D()(x)
        out = keras.layers.Dense(1)(x)
        m = keras.Model(inp, out)
        m.layers[-1].set_weights([w, b])
        return m, ""
    cands = [
        keras_paths.get(card.name),
        card.training.get("keras_model"),
        card.training.get("keras_file"),
        card.path.with_suffix(".keras"),
        REPO / "runs" / card.name / "final.keras",
    ]
    try:  # the trained models use custom layers registered by the training package
        import training.models  # noqa: F401  (registers the Normalize layer for Keras loading)
    except ImportError:
        pass
    for c in cands:
        if c and Path(c).is_file():
            try:
                return keras.models.load_model(c, compile=False), ""
            except Exception as exc:
                return None, f"cannot load {c}: {str(exc).splitlines()[0][:80]}"
    return None, f"no Keras file for {card.name} (pass --keras {card.name}=PATH)"


def keras_rate(card, files: list[Path], batch: int, keras_paths: dict[str, str]) -> str:
    if card.is_ensemble:
        return "n/a (ensemble)"
    model, why = keras_model_for(card, keras_paths)
    if model is None:
        return f"n/a ({why})"
    x = np.stack([preprocess_file(f, card.preprocessing) for f in files])
    model.predict(x[:batch], batch_size=batch, verbose=0)
    t0 = time.perf_counter()
    for k in card.tta_views:  # the same work as the engine: one pass per test-time view
        model.predict(dihedral(x, k), batch_size=batch, verbose=0)
    return f"{len(files) / (time.perf_counter() - t0):8.1f}"


def memory_run(clf, folder_src: Path, tmp: Path, n_files: int, batch: int) -> None:
    big = tmp / "memory"
    big.mkdir()
    srcs = sorted(folder_src.glob("*.bmp"))
    for i in range(n_files):
        os.link(srcs[i % len(srcs)], big / f"c{i:06d}.bmp")
    items = scan([big])
    samples = []
    marks = {int(n_files * f) for f in (0.1, 0.5, 1.0)}
    gc.collect()
    base = rss_mb()
    t0 = time.perf_counter()
    for r in classify(items, clf, batch_size=batch):
        if r.index + 1 in marks:
            samples.append(f"{r.index + 1:,}: {rss_mb():.0f} MB")
    dt = time.perf_counter() - t0
    print(
        f"memory on {n_files:,} files with {clf.name} (RSS before {base:.0f} MB): "
        + ", ".join(samples)
        + f"  [{n_files / dt:.0f} cells/s]"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="real cells per model (default 128)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default all cores)")
    ap.add_argument("--workers", type=int, default=None, help="decode workers (default min(4, cores))")
    ap.add_argument("--models", nargs="*", help="only these model names")
    ap.add_argument("--models-dir", action="append", default=[], help="extra card folder")
    ap.add_argument("--tiny", action="store_true", help="also benchmark the tiny test models")
    ap.add_argument("--keras", action="append", default=[], metavar="NAME=PATH", help="Keras model of a card")
    ap.add_argument("--memory-files", type=int, default=20_000, help="files for the memory run (0: skip)")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs of each measurement (default 2)")
    args = ap.parse_args()

    import onnxruntime as ort

    print(
        f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, onnxruntime {ort.__version__} "
        f"{ort.get_available_providers()}, batch {args.batch_size}, threads {args.threads or 'default'}, "
        f"N={args.n} real cells as BMP, best of {args.repeat}"
    )
    keras_paths = dict(kv.split("=", 1) for kv in args.keras)
    with tempfile.TemporaryDirectory(prefix="leukoscan-bench-") as t:
        tmp = Path(t)
        bench_scan(tmp)
        cells = write_bmps(real_cells(args.n), tmp / "cells")
        files = [it.path for it in scan([cells])]
        extra = list(args.models_dir)
        reg = Registry([*default_dirs(), *map(Path, extra)])
        names = list(args.models or reg.names())
        from tinymodels import make_tiny_ensemble, make_tiny_model

        td = tmp / "tiny"  # always built: the memory run uses tiny_299 (InceptionV3-sized input)
        make_tiny_model(td, "tiny_a", size=32, seed=0)
        make_tiny_model(td, "tiny_299", size=299, seed=1, crop_fraction=0.8)
        make_tiny_ensemble(td, ["tiny_a", "tiny_299"], name="tiny_ensemble")
        if args.tiny or not names:
            extra.append(str(td))
            names += ["tiny_a", "tiny_299", "tiny_ensemble"]
        reg = Registry(list(dict.fromkeys([*default_dirs(), *map(Path, extra), td])))
        for p in reg.problems:
            print(f"(invalid card skipped: {p})")
        print(
            f"\n{'model':<16}{'load s':>7}{'pure ORT':>10}{'pipeline':>10}{'ratio':>7}{'CLI':>9}{'ratio':>7}{'keras':>10}   cells/s (x views = images/s)"
        )
        for name in names:
            t0 = time.perf_counter()
            clf = reg.load(name, threads=args.threads)
            load_s = time.perf_counter() - t0
            # best of --repeat (interleaved): a shared machine only ever makes a run slower
            pure = pipe = clir = 0.0
            for _ in range(args.repeat):
                pure = max(pure, pure_ort(clf, files, args.batch_size)[0])
                pipe = max(pipe, pipeline(clf, cells, args.batch_size, args.workers))
                clir = max(clir, cli_run(name, cells, tmp / f"{name}.csv", extra, args.batch_size, args.threads))
            kr = "skipped" if args.no_keras else keras_rate(reg.get(name), files, args.batch_size, keras_paths)
            print(
                f"{name:<16}{load_s:7.2f}{pure:10.1f}{pipe:10.1f}{pipe / pure:7.2f}{clir:9.1f}{clir / pure:7.2f}{kr:>10}"
                f"   {clf.device_label}{' ' + '; '.join(clf.warnings) if clf.warnings else ''}"
            )
            sys.stdout.flush()
        if args.memory_files:
            memory_run(reg.load("tiny_299", threads=args.threads), cells, tmp, args.memory_files, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
