"""Case store (engine/case/store.py) at lab scale: a session of 20,000 cells.

Prints:

- ``write``: 20,000 results (ensemble-like: 2 member p's) added to an attached document in batches of 64,
  as a run delivers them, until all are committed; and the time the caller's (GUI) thread spent in
  ``add_results`` (the store's listener only copies tuples there; the writer thread does the SQL);
- ``reviews``: 2,000 reviews in 200 steps (10 cells each), committed;
- ``load``: ``CaseStore.load()`` of that file (best of 3; target < 2 s);
- ``rss``: resident memory of a fresh process before and after it loads the document and holds it.

Usage: ``python benchmarks/case_store.py [--cells 20000] [--reviews 2000] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rss import rss_mb

from engine.case import CaseDocument, ModelFacts
from engine.case.store import CaseStore
from engine.pipeline import CellResult, ScanItem

FACTS = ModelFacts(
    "ensemble", "1.0.0", "c" * 64, 0.5, 0.1, ("inceptionv3", "vgg19"), "CPUExecutionProvider", "Ensemble"
)


def build(path: Path, n: int, n_reviews: int) -> tuple[float, float, float]:
    store = CaseStore.open(path)
    doc = CaseDocument()
    store.attach(doc)
    root = Path(tempfile.gettempdir()) / "leukoscan-bench" / "patient 0001"
    folders = ["slide A", "slide B", "slide C", "slide D"]
    cells = doc.add_items(
        [ScanItem(root / folders[i % 4] / f"UID_{i:05d}_1_all.bmp", root, folders[i % 4]) for i in range(n)]
    )
    doc.set_model(FACTS)
    store.flush()
    caller = 0.0
    t0 = time.perf_counter()
    for b in range(0, n, 64):
        pairs = []
        for i, c in enumerate(cells[b : b + 64], b):
            p = (i * 7919 % 1000) / 1000
            pairs.append(
                (
                    c,
                    CellResult(
                        i,
                        c.path,
                        c.root,
                        c.folder,
                        c.file,
                        f"{i:064x}",
                        "ok",
                        "",
                        p,
                        {"inceptionv3": p * 0.9, "vgg19": min(1.0, p * 1.1)},
                        i % 13 == 0,
                        "",
                    ),
                )
            )
        t1 = time.perf_counter()
        doc.add_results(FACTS, pairs)
        caller += time.perf_counter() - t1
    store.flush()
    write = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_step = 10
    stride = max(1, n // n_reviews)
    reviewed = cells[::stride][:n_reviews]
    for s in range(0, len(reviewed), per_step):
        doc.review(reviewed[s : s + per_step], "accept" if s % 3 else "ALL", "bench")
    store.close()
    reviews = time.perf_counter() - t0
    return write, caller, reviews


def load_child(path: str) -> None:
    gc.collect()
    before = rss_mb()
    store = CaseStore.open(path, create=False)
    t0 = time.perf_counter()
    doc = store.load()
    t = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()
    print(f"{t:.3f} {before:.1f} {after:.1f} {len(doc.cells)} {len(doc.reviews)}")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--reviews", type=int, default=2_000)
    ap.add_argument("--keep", metavar="DIR", help="write the case file there (and keep it)")
    ap.add_argument("--load-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_child:
        load_child(args.load_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "bench.leukoscan"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        write, caller, reviews = build(path, args.cells, args.reviews)
        size = path.stat().st_size / 2**20
        print(
            f"write   : {args.cells} results in batches of 64 committed in {write:.2f} s "
            f"({args.cells / write:,.0f} results/s); caller thread in add_results {caller:.2f} s"
        )
        print(
            f"reviews : {args.reviews} reviews in {args.reviews // 10} steps committed in {reviews:.2f} s; "
            f"file {size:.1f} MiB"
        )
        times = []
        for _ in range(3):
            store = CaseStore.open(path, create=False)
            t0 = time.perf_counter()
            doc = store.load()
            times.append(time.perf_counter() - t0)
            store.close()
            del doc
            gc.collect()
        print(
            f"load    : {args.cells} cells, {args.cells} results, {args.reviews} reviews: best {min(times):.2f} s, "
            f"worst {max(times):.2f} s (target < 2 s)"
        )
        out = subprocess.run(
            [sys.executable, __file__, "--load-child", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        t, before, after = float(out[0]), float(out[1]), float(out[2])
        print(
            f"rss     : fresh process {before:.0f} MiB after imports, {after:.0f} MiB holding the loaded document "
            f"(+{after - before:.0f} MiB; load there {t:.2f} s)"
        )


if __name__ == "__main__":
    main()
