"""Markdown tables of an ``e2e`` run for docs/models.md: the held-out donors per epoch (view 0, P(ALL) >= 0.5 on
the raw logit) and, for a finished run, the shipped operating point beside the cell-area baseline.

    python -m training.run_table runs/inceptionv3_e2e
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def epoch_table(hist: dict) -> str:
    rows = [
        "| epoch | AUROC | weighted F1 | "
        + " | ".join(_donor_names(hist))
        + " | ALL patients: mean share called ALL |",
        "|---|---|---|" + "---|" * len(_donor_names(hist)) + "---|",
    ]
    for i, d in enumerate(hist.get("val_donors_view0", [])):
        h = d.get("healthy_donors", {}).get("per_subject", {})
        a = d.get("all_patients", {})
        rows.append(
            f"| {i + 1} | {hist['val_auroc_view0'][i]:.3f} | {hist['val_weighted_f1_view0'][i]:.3f} | "
            + " | ".join(f"{h.get(s, float('nan')):.2f}" for s in _donor_names(hist))
            + f" | {a.get('mean_share_called_right', float('nan')):.3f} |"
        )
    return "\n".join(rows)


def _donor_names(hist: dict) -> list[str]:
    first = (hist.get("val_donors_view0") or [{}])[0]
    return sorted(first.get("healthy_donors", {}).get("per_subject", {}), key=lambda s: int(s.lstrip("H")))


def donors_table(metrics: dict) -> str:
    """Healthy donors' share called HEM and ALL patients' share called ALL: the model (cross-fitted operating
    point) beside the cell-area baseline, on the same held-out donors."""
    model = metrics.get("donors_cross_fitted", {})
    base = (metrics.get("cell_area_baseline") or {}).get("donors", {})
    out = ["| donor | class | model | cell area alone |", "|---|---|---|---|"]
    for key, cls in (("healthy_donors", "healthy"), ("all_patients", "ALL")):
        m, b = model.get(key, {}).get("per_subject", {}), base.get(key, {}).get("per_subject", {})
        for s in sorted(m, key=lambda s: int(s.lstrip("H"))):
            out.append(f"| {s} | {cls} | {m[s]:.2f} | {b.get(s, float('nan')):.2f} |")
        mm, bb = model.get(key, {}), base.get(key, {})
        if mm:
            out.append(
                f"| **mean ({cls})** | | **{mm['mean_share_called_right']:.2f}** (worst {mm['worst_share']:.2f}; "
                f"{mm['called_right_at_case_level']} of {mm['n']} right) | {bb.get('mean_share_called_right', float('nan')):.2f} "
                f"(worst {bb.get('worst_share', float('nan')):.2f}; {bb.get('called_right_at_case_level', '?')} of "
                f"{bb.get('n', '?')}) |"
            )
    return "\n".join(out)


def main(argv=None) -> int:
    run = Path((argv or sys.argv[1:])[0])
    hist = json.loads((run / "history.json").read_text())
    hist = next(v for k, v in hist.items() if k != "recipe")
    print(epoch_table(hist))
    if (run / "metrics.json").exists():
        m = json.loads((run / "metrics.json").read_text())
        print()
        print(donors_table(m))
        h = m["validation_cross_fitted"]
        b = m.get("cell_area_baseline", {})
        print(
            f"\npooled (cross-fitted): weighted F1 {h['weighted_f1']:.3f}, AUROC {h['auroc']:.3f}, ECE {h['ece']:.3f}; "
            f"cell area alone: weighted F1 {b.get('weighted_f1', float('nan')):.3f}, AUROC {b.get('auroc', float('nan')):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
