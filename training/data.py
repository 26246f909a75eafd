"""Data: discovery of the three C-NMC layouts, subject ids, pixel-hash dedup, subject-wise splits, caches.

Layouts understood by :func:`discover`:

1. TCIA/Kaggle: ``<root>/[training_data/]fold_N/all|hem/*`` (any depth: every image whose folder is named
   ``all`` or ``hem``, case-insensitive, gets that label).
2. Plain: ``<root>/all/*`` + ``<root>/hem/*`` (the same rule).
3. Preliminary-test phase: a labels CSV with columns ``Patient_ID,new_names,labels`` (1 = ALL, 0 = HEM)
   beside (or above) images named by ``new_names``; the subject comes from ``Patient_ID``
   (``UID_<subject>_...``).

Subject ids: ``UID_<s>_...`` (ALL) or ``UID_H<s>_...`` (HEM), case-insensitive: ``h3`` == ``H3``.
Every pixel the models train on goes through :func:`engine.preprocess.preprocess_file`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.domain.labels import LABELS
from engine.preprocess import Preprocessing, is_supported, load_rgb, preprocess_file

from .files import publish, write_json

CLASSES = LABELS  # label 1 = ALL (positive), 0 = HEM (engine.domain.labels: the one tuple of class names)
_SUBJECT_RE = re.compile(r"^UID_(H?)([0-9A-Z]+)_", re.IGNORECASE)
CSV_COLUMNS = ("Patient_ID", "new_names", "labels")


class DataError(Exception):
    """The data set cannot be used as given; the message says why and what to do."""


class LeakError(DataError):
    """A subject or a pixel-identical image is on both sides of a split."""


def parse_subject(name: str) -> tuple[str, int | None]:
    """File name (or Patient_ID) -> (subject id, label implied by the id or None).

    ``UID_11_10_1_all.bmp`` -> ("11", 1); ``uid_h3_5_2_hem.bmp`` -> ("H3", 0).  Raises DataError when the
    name does not carry a C-NMC subject id.
    """
    base = Path(name).name
    m = _SUBJECT_RE.match(base)
    if not m:
        raise DataError(f"{base}: no subject id (expected UID_<subject>_... or UID_H<subject>_...)")
    healthy = bool(m.group(1))
    sid = m.group(2).upper()
    return ("H" + sid if healthy else sid), (0 if healthy else 1)


@dataclass(frozen=True)
class Item:
    path: str  # absolute
    label: int  # 1 = ALL, 0 = HEM
    subject: str


def _label_from_dir(name: str) -> int | None:
    n = name.lower()
    return 1 if n == "all" else 0 if n == "hem" else None


def _find_labels_csv(root: Path) -> Path | None:
    for p in sorted(root.rglob("*.csv")):
        try:
            with open(p, newline="", encoding="utf-8-sig") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError):
            continue
        if all(c in [h.strip() for h in header] for c in CSV_COLUMNS):
            return p
    return None


def _discover_csv(csv_path: Path) -> list[Item]:
    images: dict[str, Path] = {}
    for p in csv_path.parent.rglob("*"):
        if p.is_file() and is_supported(p) and not any(part.startswith(".") for part in p.parts):
            images.setdefault(p.name.lower(), p)
    items: list[Item] = []
    missing: list[str] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            name, lab = row["new_names"], row["labels"]
            if lab not in ("0", "1"):
                raise DataError(f"{csv_path}: label {lab!r} for {name} is not 0 (HEM) or 1 (ALL)")
            p = images.get(name.lower())
            if p is None:
                missing.append(name)
                continue
            subject, implied = parse_subject(row["Patient_ID"])
            if implied is not None and implied != int(lab):
                raise DataError(f"{csv_path}: {row['Patient_ID']} is labelled {lab} but its id says otherwise")
            items.append(Item(str(p.resolve()), int(lab), subject))
    if missing:
        raise DataError(
            f"{csv_path}: {len(missing)} image(s) listed in the CSV were not found under {csv_path.parent} "
            f"(first: {missing[0]})"
        )
    return items


def discover(root: str | Path, labels_csv: str | Path | None = None) -> list[Item]:
    """Find every labelled cell under ``root`` (layouts in the module docstring), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    csv_path = Path(labels_csv) if labels_csv else None
    items: list[Item] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        label = _label_from_dir(Path(dirpath).name)
        if label is None:
            continue
        for fn in sorted(filenames):
            if fn.startswith(".") or not is_supported(fn):
                continue
            subject, implied = parse_subject(fn)
            if implied != label:
                raise DataError(
                    f"{Path(dirpath) / fn}: the file is in '{Path(dirpath).name}/' but its subject id "
                    f"{subject} belongs to the other class"
                )
            items.append(Item(str((Path(dirpath) / fn).resolve()), label, subject))
    if not items:
        csv_path = csv_path or _find_labels_csv(root)
        if csv_path is not None:
            items = _discover_csv(csv_path)
    elif csv_path is not None:
        items += _discover_csv(csv_path)
    if not items:
        raise DataError(
            f"{root}: no labelled cells found. Expected fold_N/all|hem/ folders, all/ + hem/ folders, or a "
            f"labels CSV with columns {','.join(CSV_COLUMNS)}"
        )
    items.sort(key=lambda it: it.path)
    return items


# ---------------------------------------------------------------- pixel hashes, extents, dedup


def _scan_one(path: str) -> tuple[str, int, int, tuple[int, int, int, int]]:
    """Decoded-pixel sha256, height, width and non-black bounding box (y0, x0, y1, x1)."""
    arr = load_rgb(path)
    h = hashlib.sha256()
    h.update(np.asarray(arr.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(arr).tobytes())
    fg = arr.max(axis=2) > 10
    ys, xs = np.nonzero(fg.any(axis=1))[0], np.nonzero(fg.any(axis=0))[0]
    bbox = (int(ys[0]), int(xs[0]), int(ys[-1]) + 1, int(xs[-1]) + 1) if ys.size else (0, 0, 0, 0)
    return h.hexdigest(), arr.shape[0], arr.shape[1], bbox


def pixel_hash(path: str | Path) -> str:
    return _scan_one(str(path))[0]


@dataclass
class Manifest:
    """The deduplicated data set: parallel lists, one entry per unique cell."""

    paths: list[str]
    labels: np.ndarray  # int8, 1 = ALL
    subjects: list[str]
    hashes: list[str]
    bboxes: np.ndarray  # (n, 4) int32 y0, x0, y1, x1 of the non-black area
    sizes: np.ndarray  # (n, 2) int32 h, w
    dropped: list[dict]  # duplicates removed, with the reason

    def __len__(self) -> int:
        return len(self.paths)

    def to_json(self) -> dict:
        return {
            "paths": self.paths,
            "labels": self.labels.tolist(),
            "subjects": self.subjects,
            "hashes": self.hashes,
            "bboxes": self.bboxes.tolist(),
            "sizes": self.sizes.tolist(),
            "dropped": self.dropped,
        }

    @classmethod
    def from_json(cls, d: dict) -> Manifest:
        return cls(
            paths=list(d["paths"]),
            labels=np.asarray(d["labels"], dtype=np.int8),
            subjects=list(d["subjects"]),
            hashes=list(d["hashes"]),
            bboxes=np.asarray(d["bboxes"], dtype=np.int32).reshape(-1, 4),
            sizes=np.asarray(d["sizes"], dtype=np.int32).reshape(-1, 2),
            dropped=list(d.get("dropped", [])),
        )

    def summary(self) -> dict:
        subs = sorted(set(self.subjects))
        return {
            "cells": len(self),
            "all_cells": int((self.labels == 1).sum()),
            "hem_cells": int((self.labels == 0).sum()),
            "subjects": len(subs),
            "all_subjects": sum(1 for s in subs if not s.startswith("H")),
            "hem_subjects": sum(1 for s in subs if s.startswith("H")),
            "duplicates_dropped": len(self.dropped),
        }


def build_manifest(items: Sequence[Item], workers: int = 1, progress: bool = True) -> Manifest:
    """Hash decoded pixels, measure cell extents, drop pixel-identical duplicates.

    Duplicates with the same label keep the first path (sorted); copies that disagree on the label are all
    dropped (a cell cannot be both classes).  Unreadable files raise DataError naming them.
    """
    from .progress import Progress

    paths = [it.path for it in items]
    results = []
    # a bar on a terminal, a line every 10 % (with the ETA) when the output is redirected; nothing if not progress
    with Progress(
        len(paths),
        f"hashing {len(paths)} cells",
        unit="cells",
        bar=None if progress else False,
        every=0.1 if progress else 2.0,
    ) as bar:
        if workers > 1:
            with ProcessPoolExecutor(workers) as ex:
                for r in ex.map(_scan_one, paths, chunksize=32):
                    results.append(r)
                    bar.update(1)
        else:
            for r in map(_scan_one, paths):
                results.append(r)
                bar.update(1)
    by_hash: dict[str, list[int]] = {}
    for i, (h, *_rest) in enumerate(results):
        by_hash.setdefault(h, []).append(i)
    keep: list[int] = []
    dropped: list[dict] = []
    for h, idx in by_hash.items():
        labels = {items[i].label for i in idx}
        if len(labels) > 1:
            for i in idx:
                dropped.append({"path": paths[i], "reason": "pixel-identical copies carry both labels", "hash": h})
            continue
        keep.append(idx[0])
        for i in idx[1:]:
            dropped.append({"path": paths[i], "reason": f"pixel-identical to {paths[idx[0]]}", "hash": h})
    keep.sort()
    return Manifest(
        paths=[paths[i] for i in keep],
        labels=np.asarray([items[i].label for i in keep], dtype=np.int8),
        subjects=[items[i].subject for i in keep],
        hashes=[results[i][0] for i in keep],
        bboxes=np.asarray([results[i][3] for i in keep], dtype=np.int32).reshape(-1, 4),
        sizes=np.asarray([results[i][1:3] for i in keep], dtype=np.int32).reshape(-1, 2),
        dropped=dropped,
    )


def cell_extent_fraction(m: Manifest) -> np.ndarray:
    """Smallest centred square crop fraction (of the shorter side) that contains each cell's bounding box."""
    h, w = m.sizes[:, 0].astype(float), m.sizes[:, 1].astype(float)
    y0, x0, y1, x1 = (m.bboxes[:, k].astype(float) for k in range(4))
    half_y = np.maximum(np.abs(y0 - h / 2), np.abs(y1 - h / 2))
    half_x = np.maximum(np.abs(x0 - w / 2), np.abs(x1 - w / 2))
    return np.clip(2 * np.maximum(half_y, half_x) / np.minimum(h, w), 0, 1)


# ---------------------------------------------------------------- splits


def check_no_leak(m: Manifest, train_idx: Iterable[int], val_idx: Iterable[int]) -> None:
    """Raise LeakError if a subject or a pixel-identical image is on both sides."""
    tr, va = np.asarray(list(train_idx)), np.asarray(list(val_idx))
    if np.intersect1d(tr, va).size:
        raise LeakError(f"{np.intersect1d(tr, va).size} cell index(es) on both sides of the split")
    s_tr = {m.subjects[i] for i in tr}
    s_va = {m.subjects[i] for i in va}
    both = sorted(s_tr & s_va)
    if both:
        raise LeakError(f"LEAK: subject(s) {both} are in both the training and the validation side")
    h_tr = {m.hashes[i] for i in tr}
    dup = [m.paths[i] for i in va if m.hashes[i] in h_tr]
    if dup:
        raise LeakError(f"LEAK: {len(dup)} validation cell(s) are pixel-identical to training cells (first: {dup[0]})")


def subject_folds(m: Manifest, n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Subject-grouped, class-stratified K folds (reproducible with ``seed``); every fold leak-checked."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_hem = len({s for s, y in zip(m.subjects, m.labels) if y == 0})
    n_all = len({s for s, y in zip(m.subjects, m.labels) if y == 1})
    if min(n_hem, n_all) < n_splits:
        raise DataError(
            f"{n_splits}-fold split by subject needs at least {n_splits} subjects per class "
            f"(have {n_all} ALL, {n_hem} HEM)"
        )
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = []
    x = np.zeros(len(m))
    for tr, va in sgkf.split(x, m.labels, groups=np.asarray(m.subjects)):
        check_no_leak(m, tr, va)
        folds.append((tr, va))
    return folds


def subject_halves(subjects: Sequence[str], seed: int = 0) -> np.ndarray:
    """0/1 per cell: two subject-disjoint halves, HEM and ALL subjects dealt alternately (for cross-fitting the
    temperature/threshold on a single held-out fold)."""
    subs = sorted(set(subjects))
    rng = np.random.default_rng(seed)
    hem = [s for s in subs if s.startswith("H")]
    all_ = [s for s in subs if not s.startswith("H")]
    rng.shuffle(hem)
    rng.shuffle(all_)
    half = {s: j % 2 for j, s in enumerate(hem + all_)}
    return np.asarray([half[s] for s in subjects], dtype=np.int8)


def fold_ids(m: Manifest, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    out = np.full(len(m), -1, dtype=np.int8)
    for k, (_, va) in enumerate(folds):
        out[va] = k
    assert (out >= 0).all()
    return out


# ---------------------------------------------------------------- preprocessed pixel cache


def _prep_one(args: tuple[str, Preprocessing]) -> np.ndarray:
    path, spec = args
    x = preprocess_file(path, spec)
    u = x.astype(np.uint8)
    if not np.array_equal(u.astype(np.float32), x):  # Pillow's 8-bit resize output is integral
        raise DataError(f"{path}: preprocess_file output is not integral; cannot cache as uint8")
    return u


def spec_key(spec: Preprocessing) -> str:
    crop = f"w{spec.window_px}" if spec.crop_mode == "centroid" else f"c{spec.crop_fraction:g}"
    return f"{spec.height}x{spec.width}_{crop}_{spec.resize_filter}".replace(".", "p")


def build_pixel_cache(
    m: Manifest, spec: Preprocessing, cache_dir: str | Path, workers: int = 1, progress: bool = True
) -> np.ndarray:
    """uint8 (n, h, w, 3) memmap of ``preprocess_file`` outputs, built once per (data, spec)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256("\n".join(m.hashes).encode()).hexdigest()[:12]
    base = f"pixels_{spec_key(spec)}_{digest}"
    npy, done = cache_dir / (base + ".npy"), cache_dir / (base + ".done")
    shape = (len(m), spec.height, spec.width, 3)
    if npy.exists() and done.exists():
        arr = np.load(npy, mmap_mode="r")
        if arr.shape == shape:
            return arr
    # written under a temporary name and renamed when complete: a crash, Ctrl-C or a full disk never leaves a
    # half-written cache under the real name (nor overwrites one another process has mapped)
    tmp = cache_dir / f".{base}.{os.getpid()}.tmp.npy"
    try:
        _fill_pixel_cache(
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape), m, spec, workers, progress
        )
        publish(tmp, npy)
    finally:
        tmp.unlink(missing_ok=True)
    write_json(done, {"spec": asdict(spec), "n": len(m)})
    return np.load(npy, mmap_mode="r")


def _fill_pixel_cache(out: np.ndarray, m: Manifest, spec: Preprocessing, workers: int, progress: bool) -> None:
    from .progress import Progress

    jobs = [(p, spec) for p in m.paths]
    # a bar on a terminal, a line every 10 % (with the ETA) when the output is redirected; nothing if not progress
    bar = Progress(
        len(jobs),
        f"preprocessing {len(jobs)} cells",
        unit="cells",
        bar=None if progress else False,
        every=0.1 if progress else 2.0,
    )
    with bar:
        if workers > 1:
            with ProcessPoolExecutor(workers) as ex:
                for i, u in enumerate(ex.map(_prep_one, jobs, chunksize=32)):
                    out[i] = u
                    bar.update(1)
        else:
            for i, u in enumerate(map(_prep_one, jobs)):
                out[i] = u
                bar.update(1)
    out.flush()  # on disk before the caller renames it (the memmap closes when it is released, on return)


def save_manifest(m: Manifest, path: str | Path) -> None:
    write_json(path, m.to_json())


def load_manifest(path: str | Path) -> Manifest:
    return Manifest.from_json(json.loads(Path(path).read_text()))
