"""Engine throughput on real C-NMC cells: pure onnxruntime vs the streaming pipeline vs the CLI, per precision and views.

For each model (every registered model and ensemble; plus the tiny test models with --tiny, or when none is
registered), at each precision it has (``fp32``; ``int8`` where its card names an int8 copy that passed the gate,
docs/speed.md), with the card's test-time views and with one view (a card with several), on the same N real
cells written as 24-bit BMP (what labs have):

- ``pure ORT``: the cells decoded and preprocessed beforehand, only ``session.run`` timed (every view, all members
  of an ensemble, one after the other) — the ceiling;
- ``pipeline``: ``engine.pipeline.classify`` on the files, model already loaded (read + sha256 + decode +
  preprocess in worker threads, overlapping batched inference);
- ``CLI``: ``leukoscan-cli classify --precision P`` end to end in-process (registry, model load, scan, pipeline,
  CSV report written);
- ``keras``: ``model.predict`` of the same network where TensorFlow is installed and the Keras model is found
  (float32 rows only; the tiny models are rebuilt in Keras exactly; trained models: ``--keras NAME=PATH``, a card
  ``training.keras_model`` path, ``<name>.keras`` beside the card, or ``runs/<name>/final.keras``);
- ``peak RSS``: the peak resident memory of a process that ran only that row (each row runs in its own process).

All figures are cells/s (a cell with V views is V network runs).  Also: pure onnxruntime cells/s at each batch
size of ``--batch-sizes`` (one view: how the batch size is chosen), the CPU model (lscpu) and its physical cores,
scan time for 20,000 files and the resident memory of a long run (flat = bounded prefetch).  Usage:
``python benchmarks/engine_throughput.py [--n 128] [--tiny] [--memory-files 20000] [--batch-sizes 1,8,16,32,64]``.
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


def cli_run(
    name: str, folder: Path, out: Path, extra_dirs: list[str], batch: int, threads: int | None, precision: str = "fp32"
) -> float:
    args = ["classify", str(folder), "--model", name, "--out", str(out), "--no-progress", "--batch-size", str(batch)]
    args += ["--precision", precision]
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


def cpu_model() -> str:
    """lscpu's "Model name" (else /proc/cpuinfo's "model name", else the platform's processor string)."""
    import platform
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def one_view_cards(reg, dest: Path) -> dict[str, str]:
    """For each single model whose card has several test-time views, a copy of its card with view 0 only, named
    ``<name>-1view``, beside links to its ONNX files (the shipped folder is never written): {copy: original}."""
    import json

    dest.mkdir(parents=True, exist_ok=True)
    made = {}
    for card in reg.cards():
        if card.is_ensemble or len(card.tta_views) < 2:
            continue
        raw = dict(card.raw)
        raw["name"] = f"{card.name}-1view"
        raw["display_name"] = f"{card.display_name} (1 view)"
        raw["test_time_augmentation"] = {"views": [0], "combine": "mean_logit"}
        raw["recommended"] = False
        for f in (card.onnx_file, card.int8_file):
            if f is not None and f.is_file() and not (dest / f.name).exists():
                os.symlink(f.resolve(), dest / f.name)
        (dest / f"{raw['name']}.json").write_text(json.dumps(raw), encoding="utf-8")
        made[raw["name"]] = card.name
    return made


def precisions(reg, name: str) -> list[str]:
    """fp32, and int8 where the card (an ensemble: any member) names an int8 copy that passed the gate."""
    card = reg.get(name)
    cards = [reg.get(m) for m in card.members] if card.is_ensemble else [card]
    has8 = any(c.int8_passed and c.int8_file is not None and c.int8_file.is_file() for c in cards)
    return ["fp32", "int8"] if has8 else ["fp32"]


def child(args) -> int:
    """One row: the model ``args.child`` at ``args.precision``, in a process of its own (its peak RSS is the row's)."""
    import json
    import resource

    files = [it.path for it in scan([args.cells])]
    dirs = [*default_dirs(), *map(Path, args.models_dir)]
    reg = Registry(dirs)
    t0 = time.perf_counter()
    clf = reg.load(args.child, threads=args.threads, precision=args.precision)
    row = {"load_s": time.perf_counter() - t0, "device": clf.device_label, "warnings": clf.warnings}
    row["views"] = max(len(m.card.tta_views) for m in clf.members)
    pure = pipe = clir = 0.0
    for _ in range(args.repeat):  # best of --repeat (interleaved): a shared machine only ever makes a run slower
        pure = max(pure, pure_ort(clf, files, args.batch_size)[0])
        pipe = max(pipe, pipeline(clf, args.cells, args.batch_size, args.workers))
        clir = max(
            clir,
            cli_run(
                args.child,
                args.cells,
                Path(args.out),
                args.models_dir,
                args.batch_size,
                args.threads,
                args.precision,
            ),
        )
    row.update(pure=pure, pipeline=pipe, cli=clir)
    if args.batch_sizes and row["views"] == 1:
        row["sweep"] = {b: pure_ort(clf, files, b)[0] for b in args.batch_sizes}
    keras_paths = dict(kv.split("=", 1) for kv in args.keras)
    row["keras"] = (
        "skipped"
        if args.no_keras or args.precision != "fp32"
        else keras_rate(reg.get(args.child), files, args.batch_size, keras_paths)
    )
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row["peak_rss_mb"] = r / 2**20 if sys.platform == "darwin" else r / 1024
    print("RESULT " + json.dumps(row), flush=True)
    return 0


def run_child(name: str, precision: str, cells: Path, dirs: list[str], tmp: Path, args) -> dict:
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--child", name, "--precision", precision, "--cells", str(cells)]
    cmd += ["--out", str(tmp / f"{name}.{precision}.csv"), "--batch-size", str(args.batch_size)]
    cmd += ["--repeat", str(args.repeat), "--memory-files", "0"]
    for d in dirs:
        cmd += ["--models-dir", d]
    for kv in args.keras:
        cmd += ["--keras", kv]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.no_keras:
        cmd.append("--no-keras")
    if args.batch_sizes:
        cmd += ["--batch-sizes", ",".join(map(str, args.batch_sizes))]
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{name} {precision}: benchmark process failed:\n{p.stderr[-2000:]}")


def _batches(text: str) -> list[int]:
    return [int(b) for b in text.split(",") if b.strip()]


def print_rows(names: list[str], reg, cells: Path, extra: list[str], tmp: Path, args) -> None:
    """The table: one row per model, precision and views (each measured in a process of its own), then the sweep."""
    sweeps = []
    for name in names:
        for prec in precisions(reg, name):
            r = run_child(name, prec, cells, extra, tmp, args)
            print(
                f"{name:<20}{prec:>5}{r['views']:>6}{r['load_s']:7.2f}{r['pure']:10.1f}{r['pipeline']:10.1f}"
                f"{r['pipeline'] / r['pure']:7.2f}{r['cli']:9.1f}{r['cli'] / r['pure']:7.2f}{r['keras']:>10}"
                f"{r['peak_rss_mb']:10.0f}   {r['device']}{' ' + '; '.join(r['warnings']) if r['warnings'] else ''}"
            )
            sys.stdout.flush()
            if r.get("sweep"):
                sweeps.append((name, prec, r["sweep"]))
    if sweeps:
        sizes = list(sweeps[0][2])
        print(f"\npure onnxruntime, one view, cells/s by batch size\n{'model':<20}{'prec':>5}", end="")
        print("".join(f"{'b=' + b:>9}" for b in sizes))
        for name, prec, sw in sweeps:
            best = max(sw, key=sw.get)
            print(f"{name:<20}{prec:>5}" + "".join(f"{sw[b]:8.1f}{'*' if b == best else ' '}" for b in sizes))
        print("(* the fastest; within about 10 % of each other is noise on a shared machine)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="real cells per model (default 128)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--batch-sizes",
        type=_batches,
        default=[1, 8, 16, 32, 64],
        help="pure onnxruntime at each of these batch sizes, one view (default 1,8,16,32,64; '' to skip)",
    )
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: the physical cores)")
    ap.add_argument("--workers", type=int, default=None, help="decode workers (default min(4, cores))")
    ap.add_argument("--models", nargs="*", help="only these model names")
    ap.add_argument("--models-dir", action="append", default=[], help="extra card folder")
    ap.add_argument("--tiny", action="store_true", help="also benchmark the tiny test models")
    ap.add_argument("--keras", action="append", default=[], metavar="NAME=PATH", help="Keras model of a card")
    ap.add_argument("--memory-files", type=int, default=20_000, help="files for the memory run (0: skip)")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--no-single-view", action="store_true", help="no one-view rows for cards with several views")
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs of each measurement (default 2)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--cells", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    return ap


def main() -> int:
    from engine.model import physical_cores

    args = parser().parse_args()
    if args.child:
        return child(args)

    import onnxruntime as ort

    print(
        f"CPU: {cpu_model()}, {physical_cores()} physical cores ({os.cpu_count()} logical), load average "
        f"{os.getloadavg()[0]:.1f}; onnxruntime {ort.__version__} {ort.get_available_providers()}, batch "
        f"{args.batch_size}, threads {args.threads or 'default (the physical cores)'}, N={args.n} real cells as BMP, "
        f"best of {args.repeat}"
    )
    with tempfile.TemporaryDirectory(prefix="leukoscan-bench-") as t:
        tmp = Path(t)
        if args.memory_files:
            bench_scan(tmp)
        cells = write_bmps(real_cells(args.n), tmp / "cells")
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
        if not args.no_single_view:
            one = one_view_cards(Registry([*default_dirs(), *map(Path, extra)]), tmp / "oneview")
            if one:
                extra.append(str(tmp / "oneview"))
                names = [n for name in names for n in [name, *[k for k, v in one.items() if v == name]]]
        reg = Registry(list(dict.fromkeys([*default_dirs(), *map(Path, extra), td])))
        for p in reg.problems:
            print(f"(invalid card skipped: {p})")
        print(
            f"\n{'model':<20}{'prec':>5}{'views':>6}{'load s':>7}{'pure ORT':>10}{'pipeline':>10}{'ratio':>7}"
            f"{'CLI':>9}{'ratio':>7}{'keras':>10}{'peak RSS':>10}   cells/s; peak RSS in MB"
        )
        print_rows(names, reg, cells, extra, tmp, args)
        if args.memory_files:
            memory_run(reg.load("tiny_299", threads=args.threads), cells, tmp, args.memory_files, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
