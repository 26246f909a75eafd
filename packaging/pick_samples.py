"""Maintainer tool: (re)pick the bundled self-test cells in ``resources/samples/``.

    .venv/bin/python packaging/pick_samples.py [--data ../shared/data/C-NMC_Leukemia/training_data]
        [--folds fold_1] [--per-class 3] [--candidates 4] [--seed 0] [--no-models]

Draws ``--candidates`` random cells from each subject of the chosen folds, classifies them with every
registered model (the same engine code the app uses) and keeps, for each class, the cells whose
*smallest* clearance (``|P(ALL) - threshold| - review_margin``, on the correct side) over all models
is largest and positive for every model,
one cell per subject, ``--per-class`` subjects per class.  Writes the cells as lossless PNG (plus one
as BMP, the format labs' original files have, and one as WebP, the dataset's storage format, so the
bundle's three decoders are exercised) and ``manifest.csv`` (file, expected_class, subject).

Run it again whenever the shipped models change and the self-test reports drift; commit the result.
The cells are a regression check of the installation, not an accuracy claim.
``--no-models`` (before any model exists) picks random cells from distinct subjects.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.preprocess import load_rgb

NAME_RE = re.compile(r"^UID_([^_]+)_.*_(all|hem)$", re.IGNORECASE)


def subject_of(path: Path) -> tuple[str, str]:
    m = NAME_RE.match(path.stem)
    if not m:
        raise ValueError(f"unexpected C-NMC file name: {path.name}")
    return m.group(1).upper(), m.group(2).upper()


def candidates(
    data: Path, folds: list[str], per_subject: int, rng: random.Random, subjects: set[str] | None = None
) -> dict[str, dict[str, list[Path]]]:
    """{class: {subject: [paths]}} with up to ``per_subject`` random cells per subject (of ``subjects``)."""
    by: dict[str, dict[str, list[Path]]] = {"ALL": {}, "HEM": {}}
    for fold in folds:
        for cls in ("all", "hem"):
            for p in sorted((data / fold / cls).glob("*")):
                if p.suffix.lower() in (".webp", ".bmp", ".png"):
                    subj, c = subject_of(p)
                    if subjects is None or subj in subjects:
                        by[c].setdefault(subj, []).append(p)
    for c in by:
        for subj in by[c]:
            rng.shuffle(by[c][subj])
            by[c][subj] = by[c][subj][:per_subject]
    return by


def score_with_models(paths: list[Path]) -> dict[Path, float]:
    """Smallest clearance over all models: distance beyond the review band on the correct side of the
    threshold (> 0 = the self-test accepts the cell for that model)."""
    from engine.pipeline import classify, scan
    from engine.registry import Registry

    reg = Registry()
    cards = reg.cards()
    if not cards:
        raise SystemExit("no models registered: use --no-models or add models first")
    items = scan(paths)
    worst: dict[Path, float] = {Path(i.path): float("inf") for i in items}
    for card in cards:
        clf = reg.load(card.name, device="auto")
        print(f"scoring {len(items)} candidates with {card.name} on {clf.device_label} ...", file=sys.stderr)
        for r in classify(items, clf, batch_size=16):
            p = Path(r.path)
            if r.status != "ok" or r.p_all is None:
                worst[p] = -1.0
                continue
            _, cls = subject_of(p)
            signed = (r.p_all - clf.threshold) if cls == "ALL" else (clf.threshold - r.p_all)
            signed -= clf.review_margin  # > 0: correct *and* outside the review band (what the self-test demands)
            if r.members_disagree:
                signed = min(signed, -1.0)
            worst[p] = min(worst[p], signed)
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/C-NMC_Leukemia/training_data")
    ap.add_argument("--folds", nargs="+", default=["fold_0", "fold_1"])
    ap.add_argument("--per-class", type=int, default=3)
    ap.add_argument("--candidates", type=int, default=4, help="random cells drawn per subject")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "resources/samples")
    ap.add_argument("--subjects", nargs="+", help="only these subject ids (e.g. the models' held-out subjects)")
    ap.add_argument("--no-models", action="store_true")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    subjects = {x.upper() for x in args.subjects} if args.subjects else None
    by = candidates(args.data, args.folds, args.candidates, rng, subjects)
    chosen: list[tuple[Path, str, str, float]] = []
    if args.no_models:
        for cls in ("ALL", "HEM"):
            subjects = sorted(by[cls])
            rng.shuffle(subjects)
            for subj in subjects[: args.per_class]:
                chosen.append((by[cls][subj][0], cls, subj, float("nan")))
    else:
        allp = [p for cls in by for subj in by[cls] for p in by[cls][subj]]
        score = score_with_models(allp)
        for cls in ("ALL", "HEM"):
            best = []
            for subj, paths in by[cls].items():
                p = max(paths, key=lambda q: score.get(q, -1.0))
                if score.get(p, -1.0) > 0:
                    best.append((score[p], subj, p))
            best.sort(reverse=True)
            if len(best) < args.per_class:
                raise SystemExit(f"only {len(best)} subjects of class {cls} have a correctly classified candidate")
            for s, subj, p in best[: args.per_class]:
                chosen.append((p, cls, subj, s))

    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.iterdir():
        if old.suffix.lower() in (".png", ".bmp", ".webp") or old.name == "manifest.csv":
            old.unlink()
    rows = []
    # One BMP (the labs' original format) and one WebP (the dataset's storage) among the PNGs.
    formats = {0: ".bmp", len(chosen) - 1: ".webp"}
    for i, (src, cls, subj, s) in enumerate(chosen):
        ext = formats.get(i, ".png")
        dst = args.out / (src.stem + ext)
        arr = load_rgb(src)
        im = Image.fromarray(arr, "RGB")
        if ext == ".webp":
            im.save(dst, lossless=True, quality=100, method=6)
        elif ext == ".png":
            im.save(dst, optimize=True)
        else:
            im.save(dst)
        # Pixel-exact copy of the source cell, whatever the container.
        assert (load_rgb(dst) == arr).all(), dst
        rows.append({"file": dst.name, "expected_class": cls, "subject": subj})
        print(f"{dst.name:<32} {cls} subject {subj:<4} worst clearance {s:.3f}  ({src.parent.parent.name})")
    with open(args.out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "expected_class", "subject"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
