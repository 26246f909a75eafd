"""CPU-vs-CUDA parity of P(ALL) and cells/s per shipped model (run by benchmarks/gpu_check.sh; docs/gpu.md).

For every shipped model (the cards in resources/models, or ``--models-dir``): P(ALL) of the self-test's sample
cells on the CPU and on ``--device`` (default cuda), the largest difference (must be < ``--tol``, and no cell may
change class), then ``leukoscan-cli classify`` end to end on ``--n`` real cells (C-NMC beside the repo, else the
sample cells repeated) with cells/s from its JSON.  Prints one line per model and exits 1 when a check fails.
``--device cpu`` runs the same checks CPU against CPU (how the script is tested without a GPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.pipeline import classify, scan
from engine.registry import Registry
from engine.selftest import default_samples_dir, read_manifest

SHARED = REPO.parent / "shared" / "data" / "C-NMC_Leukemia" / "training_data"


def p_all(reg: Registry, name: str, paths: list[Path], device: str) -> tuple[np.ndarray, str]:
    clf = reg.load(name, device=device)
    got = {r.path: r.p_all for r in classify(scan(paths), clf)}
    return np.array([got[p] for p in paths], dtype=np.float64), clf.device_label


def cells(n: int, folder: Path) -> Path:
    """``n`` cells as BMP files in ``folder`` (real C-NMC cells when the data is beside the repo)."""
    src = sorted(SHARED.glob("fold_*/*/*.webp"))[:n] if SHARED.is_dir() else []
    if not src:
        samples = sorted(s.path for s in read_manifest(default_samples_dir()))
        src = [samples[i % len(samples)] for i in range(n)]
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(src):
        with Image.open(s) as im:
            im.convert("RGB").save(folder / f"c{i:05d}.bmp")
    return folder


def throughput(name: str, folder: Path, device: str, dirs: list[str], batch: int) -> dict:
    """``leukoscan-cli classify`` in its own process; its JSON (``cells_per_s``: the run after the model loaded)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["classify", str(folder), "--model", name, "--device", device, "--out", f"{tmp}/r.csv", "--json"]
        args += ["--no-progress", "-q", "--batch-size", str(batch)] + [a for d in dirs for a in ("--models-dir", d)]
        p = subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"leukoscan-cli classify --model {name} --device {device} exited {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"), help="compared with the CPU")
    ap.add_argument("--models-dir", action="append", default=[], help="test these model folders' cards instead")
    ap.add_argument("--n", type=int, default=2000, help="cells for the cells/s run (default 2000)")
    ap.add_argument("--batch-size", type=int, default=64, help="cells per inference batch (default 64)")
    ap.add_argument("--tol", type=float, default=1e-3, help="largest |P_cpu - P_device| allowed (default 0.001)")
    args = ap.parse_args(argv)
    reg = Registry(args.models_dir or None)
    names = [c.name for c in reg.cards()]
    samples = read_manifest(default_samples_dir())
    paths = [s.path for s in samples]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = cells(args.n, Path(tmp) / "cells")
        for name in names:
            cpu, _ = p_all(reg, name, paths, "cpu")
            dev, label = p_all(reg, name, paths, args.device)
            thr = reg.load(name, device="cpu").threshold
            diff = float(np.max(np.abs(cpu - dev)))
            flips = int(np.sum((cpu >= thr) != (dev >= thr)))
            good = diff < args.tol and flips == 0 and (args.device != "cuda" or label == "CUDA")
            ok = ok and good
            doc = throughput(name, folder, args.device, args.models_dir, args.batch_size)
            print(
                f"{name}: parity {'OK' if good else 'FAIL'} on {len(paths)} sample cells (max |P_cpu - P_{label}| "
                f"{diff:.2e}, class changes {flips}); {doc['cells_per_s']:.1f} cells/s end to end on "
                f"{doc['device']} ({doc['provider']}), {doc['images']} cells, batch {args.batch_size}",
                flush=True,
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
