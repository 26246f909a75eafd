"""``leukoscan-train cv``: every recipe of the comparison on the committed donor folds, one table.

The recipe list and the selection rule (training/donor_cv.SELECTION_RULE) were written down before any recipe was
scored; the table keeps every row, failures included.  Features come from training/probe.py's cache (extracted
once per backbone and view, resumable); the heads take seconds, so rerunning the table is cheap.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import donor_cv
from .files import save_npz, write_json, write_text
from .probe_cv import LOG_AREA, Recipe, cross_validate

V3 = ("block3_conv4",)
V4 = ("block4_conv2",)
V34 = ("block3_conv4", "block4_conv2")
I2, I5, I7 = ("mixed2",), ("mixed5",), ("mixed7",)
I57 = ("mixed5", "mixed7")
STAIN = ("d0", "s0")  # the identity view and one HED-jittered draw per cell
TTA = ("d0", "d5")

#: The comparison, cheapest first.  Names: backbone, layers, pools (gap = whole frame, masked = cell only),
#: weighting (cls = each class counts equally, donor = each donor counts equally), +stain (HED-jitter training
#: views), +tta (mean logit of the identity and a rotated-flipped view).
RECIPES: tuple[Recipe, ...] = (
    Recipe("cell area alone", "area", note="the size-only baseline"),
    Recipe("vgg19 b3 gap cls", "vgg19", V3, ("gap",), note="the VGG19 2.0 recipe's features (identity view only)"),
    Recipe("vgg19 b3 gap+std cls", "vgg19", V3, ("gap", "gstd"), note="the independent check's plain baseline"),
    Recipe("vgg19 b3 masked cls", "vgg19", V3),
    Recipe("vgg19 b4 masked cls", "vgg19", V4),
    Recipe("vgg19 b3+b4 masked cls", "vgg19", V34),
    Recipe("vgg19 b3+b4 gap+std cls", "vgg19", V34, ("gap", "gstd")),
    Recipe("inception m2 masked cls", "inceptionv3", I2),
    Recipe("inception m5 masked cls", "inceptionv3", I5),
    Recipe("inception m7 masked cls", "inceptionv3", I7),
    Recipe("inception m5+m7 masked cls", "inceptionv3", I57),
    Recipe("inception m5+m7 gap+std cls", "inceptionv3", I57, ("gap", "gstd")),
    Recipe("vgg19 b3 gap+std donor", "vgg19", V3, ("gap", "gstd"), "donor"),
    Recipe("vgg19 b3+b4 masked donor", "vgg19", V34, weighting="donor"),
    Recipe("inception m5+m7 masked donor", "inceptionv3", I57, weighting="donor"),
    Recipe("vgg19 b3+b4 masked donor +stain", "vgg19", V34, weighting="donor", train_views=STAIN),
    Recipe("inception m5+m7 masked donor +stain", "inceptionv3", I57, weighting="donor", train_views=STAIN),
    Recipe("vgg19 b3+b4 masked donor +stain +tta", "vgg19", V34, weighting="donor", train_views=STAIN, test_views=TTA),
    Recipe(
        "inception m5+m7 masked donor +stain +tta",
        "inceptionv3",
        I57,
        weighting="donor",
        train_views=STAIN,
        test_views=TTA,
    ),
    Recipe("vgg19 b2 gap+std cls", "vgg19lo", ("block2_conv2",), ("gap", "gstd")),
    Recipe("vgg19 b2+b3 gap+std cls", "vgg19lo", ("block2_conv2", "block3_conv4"), ("gap", "gstd")),
    Recipe("vgg19 b3 gap+std cls +tta", "vgg19", V3, ("gap", "gstd"), test_views=TTA),
    Recipe("vgg19 b3 gap+std cls bagged", "vgg19", V3, ("gap", "gstd"), bagged=True),
    Recipe("vgg19 b3 masked cls +tta", "vgg19", V3, test_views=TTA, note="added once 'vgg19 b3 masked cls' led"),
    Recipe("vgg19 b3 gap+std cls size-adj", "vgg19", V3, ("gap", "gstd"), size_adjust=True),
    Recipe("vgg19 b3 masked cls size-adj", "vgg19", V3, size_adjust=True),
    Recipe("vgg19 b3+b4 masked donor size-adj", "vgg19", V34, weighting="donor", size_adjust=True),
    Recipe(
        "vgg19 b3+b4 masked donor +stain size-adj",
        "vgg19",
        V34,
        weighting="donor",
        train_views=STAIN,
        size_adjust=True,
    ),
    Recipe(
        "inception m5+m7 masked donor +stain size-adj",
        "inceptionv3",
        I57,
        weighting="donor",
        train_views=STAIN,
        size_adjust=True,
    ),
    Recipe(
        "ensemble vgg19 + inception, masked donor +stain size-adj",
        "ensemble",
        members=("vgg19 b3+b4 masked donor +stain size-adj", "inception m5+m7 masked donor +stain size-adj"),
    ),
    Recipe(
        "ensemble vgg19 + inception, masked donor +stain",
        "ensemble",
        members=("vgg19 b3+b4 masked donor +stain", "inception m5+m7 masked donor +stain"),
    ),
    Recipe(
        "ensemble vgg19 + inception, masked donor +stain +tta",
        "ensemble",
        members=("vgg19 b3+b4 masked donor +stain +tta", "inception m5+m7 masked donor +stain +tta"),
    ),
)


#: Added after the table above had been read (so their place in the table is not a fair test): the average of
#: the best VGG19 and the best InceptionV3 row by the selection rule, as C-NMC's best entries averaged models.
RECIPES += (
    Recipe(
        "ensemble vgg19 b3 masked + inception m2 masked",
        "ensemble",
        members=("vgg19 b3 masked cls", "inception m2 masked cls"),
        note="members chosen after the table was read",
    ),
    # issue 29 (speed): the chosen recipe on a smaller input (FLOPs x0.64 at 128, x0.49 at 112); its place in the
    # table says whether the selection rule would keep it, docs/speed.md what it would buy
    Recipe(
        "vgg19 b2 gap+std cls @128px",
        "vgg19lo128",
        ("block2_conv2",),
        ("gap", "gstd"),
        note="added after the choice, to measure a cheaper input",
    ),
    Recipe(
        "vgg19 b2 gap+std cls @112px",
        "vgg19lo112",
        ("block2_conv2",),
        ("gap", "gstd"),
        note="added after the choice, to measure a cheaper input",
    ),
)


def views_needed(recipes=RECIPES) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in recipes:
        if r.arch not in ("area", "ensemble"):
            out.setdefault(r.arch, set()).update(r.train_views + r.test_views)
    return out


def _zscore(z: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """A member's logits put on a common scale before averaging: Platt-calibrated on the other folds."""
    from .metrics import fit_platt

    out = np.zeros(len(z))
    for k in sorted(set(folds.tolist())):
        tr, te = folds != k, folds == k
        t, s = fit_platt(z[tr], y[tr])
        out[te] = z[te] / t + s
    return out


def run_all(
    feats: dict, m, area: np.ndarray, out_dir: Path, only=None, log=print, fold_file: Path = donor_cv.FOLD_FILE
) -> list[dict]:
    """Cross-validates each recipe on ``fold_file``'s folds (``only``: names to run; the others are read back from
    ``out_dir`` where they were run before, else left out), writes
    ``out_dir/oof/<name>.npz``, ``results.json`` and ``table.md``; returns the rows, best first by the rule."""
    y = m.labels.astype(int)
    subjects = list(m.subjects)
    folds = donor_cv.load_folds(subjects, fold_file)
    (out_dir / "oof").mkdir(parents=True, exist_ok=True)
    rows, logits = [], {}
    for r in RECIPES:
        f = out_dir / "oof" / (r.name.replace(" ", "_").replace("+", "p").replace(",", "") + ".npz")
        t0 = time.time()
        if only is not None and r.name not in only:
            if not f.exists():
                continue
            d = np.load(f)
            z, cs = d["logits"], d["C"].tolist()
        elif r.arch == "ensemble" and any(n not in logits for n in r.members):
            log(f"skipped {r.name}: a member was skipped")
            continue
        elif r.arch == "ensemble":
            z = np.mean([_zscore(logits[n], y, folds) for n in r.members], axis=0)
            cs = []
        else:
            if r.arch != "area" and any(v not in feats.get(r.arch, {}) for v in r.train_views + r.test_views):
                log(f"skipped {r.name}: features not extracted")
                continue
            cv = cross_validate(feats.get(r.arch, {}), r, y, subjects, folds, area=area, log=log)
            z, cs = cv["logits"], cv["C"]
        save_npz(f, logits=z.astype(np.float32), C=np.asarray(cs, np.float64), folds=folds, labels=y.astype(np.int8))
        logits[r.name] = z
        s = donor_cv.score(z, y, subjects, folds)
        rows.append({"recipe": r.to_dict(), "C_per_fold": cs, "seconds": round(time.time() - t0, 1), **s})
        a = s["at_oof_threshold"]
        log(
            f"{r.name}: AUROC {a['auroc']:.3f} healthy {a['healthy']['mean']:.2f} (worst {a['healthy']['worst']:.2f}) "
            f"large {a['healthy_large_celled']['mean']:.2f} ALL {a['all_patients']['mean']:.2f} "
            f"case {a['subjects_right_at_case_level']}/{a['n_subjects']}"
        )
    order = sorted(rows, key=lambda row: donor_cv.selection_key(row), reverse=True)
    write_json(
        out_dir / "results.json",
        {
            "selection_rule": donor_cv.SELECTION_RULE,
            "fold_file": _shown(fold_file),
            "data": m.summary(),
            "chosen": order[0]["recipe"]["name"] if order else None,
            "rows": rows,
        },
    )
    write_text(out_dir / "table.md", table_markdown(rows, order, fold_file))
    return order


def _shown(path: Path) -> str:
    """The fold file as results.json names it: from the repository root when it is inside it."""
    root = donor_cv.FOLD_FILE.parents[2]
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _f(v, d=2):
    return "—" if v is None else f"{v:.{d}f}"


def table_markdown(rows: list[dict], order: list[dict], fold_file: Path = donor_cv.FOLD_FILE) -> str:
    """The comparison table (one line per recipe, in the order run) and the per-donor table of the chosen one."""
    out = [
        "| recipe | AUROC | ECE (cross-fitted) | healthy mean | healthy worst | large-celled healthy mean | other healthy "
        "mean | ALL mean | ALL worst | subjects right (case) | healthy mean, cross-fitted | healthy mean where ALL "
        "mean >= 0.95 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a, c = row["at_oof_threshold"], row["cross_fitted"]
        out.append(
            f"| {row['recipe']['name']} | {_f(a['auroc'], 3)} | {_f(c['ece'], 3)} | {_f(a['healthy']['mean'])} | "
            f"{_f(a['healthy']['worst'])} ({a['healthy']['worst_subject']}) | "
            f"{_f(a['healthy_large_celled']['mean'])} | {_f(a['healthy_other']['mean'])} | "
            f"{_f(a['all_patients']['mean'])} | {_f(a['all_patients']['worst'])} | "
            f"{a['subjects_right_at_case_level']}/{a['n_subjects']} | {_f(c['healthy']['mean'])} | "
            f"{_f((a.get('healthy_mean_where_all_mean_0_95') or {}).get('healthy_mean'))} |"
        )
    if order:
        best = order[0]
        out += ["", f"Chosen by the rule: **{best['recipe']['name']}**.", ""]
        out += donor_rows(best, fold_file)
    return "\n".join(out) + "\n"


def donor_rows(row: dict, fold_file: Path = donor_cv.FOLD_FILE) -> list[str]:
    """Each donor of one recipe: cells, share called right at the pooled operating point, fold."""
    fold_of = donor_cv.fold_of_subject(fold_file)
    a = row["at_oof_threshold"]
    lines = [
        "| subject | class | cells | share called right | median P(ALL) | large-celled | fold |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, d in a["donors"].items():
        lines.append(
            f"| {s} | {d['class']} | {d['n']} | {d['share_right']:.2f} | {d['median_p_all']:.2f} | "
            f"{'yes' if d['large_celled'] else ''} | {fold_of.get(s, '')} |"
        )
    return lines


# ------------------------------------------------------------------------------------------------ command


def load_features(m, cache: Path, weights: dict[str, str | None], need: dict[str, set[str]], workers: int, log):
    """{arch: {view: {layer: (n, 4c)}}} for the views ``need`` names (extracted now when not cached)."""
    from engine.preprocess import Preprocessing

    from .data import build_pixel_cache
    from .metrics import cell_area
    from .probe import BACKBONES, extract

    feats = {}
    for arch, views in need.items():
        bb = BACKBONES[arch]
        px = build_pixel_cache(m, Preprocessing(bb.size, bb.size, bb.crop, "bilinear"), cache, workers=workers)
        order = sorted(views, key=lambda v: (v != "d0", v))
        feats[arch] = extract(px, bb, weights[arch], cache, order, log=log)
        feats[arch][LOG_AREA] = np.log(np.clip(cell_area(px), 1e-4, None))
    return feats


def cell_areas(m, cache: Path, workers: int) -> np.ndarray:
    """Share of the (VGG19) input window covered by the cell: the size-only baseline's one feature."""
    from engine.preprocess import Preprocessing

    from .data import build_pixel_cache
    from .metrics import cell_area
    from .probe import BACKBONES

    bb = BACKBONES["vgg19"]
    return cell_area(build_pixel_cache(m, Preprocessing(bb.size, bb.size, bb.crop, "bilinear"), cache, workers=workers))


def one_fold(feats, r: Recipe, m, area, fold: int, log=print, fold_file: Path = donor_cv.FOLD_FILE) -> dict:
    """One recipe, one fold (the quick check for a newcomer): AUROC and each held-out donor's share called right at
    P(ALL) 0.5 of the uncalibrated head (no calibration or threshold is fitted for a single fold)."""
    from sklearn.metrics import roc_auc_score

    from .probe_cv import area_logit, choose_c, heads_for, inner_folds, test_logit

    y = m.labels.astype(int)
    groups = np.asarray(m.subjects)
    folds = donor_cv.load_folds(list(m.subjects), fold_file)
    tr, te = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
    if r.arch == "area":
        z = area_logit(area, y, tr, te)
    else:
        c = choose_c(feats[r.arch], r, y, groups, tr, inner_folds(groups[tr], y[tr]))
        z = test_logit(feats[r.arch], r, heads_for(feats[r.arch], r, tr, y, groups, [c])[0], te)
    pred = (z >= 0).astype(int)
    out = {"fold": fold, "auroc": float(roc_auc_score(y[te], z)), "donors": {}}
    for s in sorted(set(groups[te].tolist()), key=donor_cv._subject_order):
        sel = groups[te] == s
        out["donors"][s] = {"n": int(sel.sum()), "share_right": float((pred[sel] == y[te][sel]).mean())}
        log(f"  {s:>4} {int(sel.sum()):4d} cells  {out['donors'][s]['share_right']:.2f} called right (P(ALL) 0.5)")
    log(f"{r.name}, fold {fold}: AUROC {out['auroc']:.3f}")
    return out
