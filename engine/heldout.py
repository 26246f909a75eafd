"""A model card's held-out results in plain words, for the card view and the CLI's ``models`` listing.

The card's ``metrics.held_out`` block (written by ``leukoscan-train export``) says on which donors the model was
measured, that none of them was seen in training, and how it did per donor.  A technician should not need to read
JSON to learn that, e.g., a model calls 4 of 10 normal cells of its worst healthy donor normal.
"""

from __future__ import annotations

from typing import Any, Mapping


#: The one warning that matters, in plain words (card view, CLI ``models``, PDF).
WARNING = ("A case unlike the donors the model was trained on can be wrong as a whole: on healthy donors whose "
           "normal cells are larger than usual, earlier models called every cell leukemic. The numbers above are "
           "from donors it never saw; new donors can be worse.")


def _tenths(x: float) -> str:
    return f"{int(10 * x + 0.5)} of 10"  # half up: 0.25 -> 3, not banker's 2


def case_level(per_donor: Mapping[str, Mapping[str, Any]], cutoff: float = 0.5) -> tuple[int, int]:
    """(donors called right, donors): a patient with ALL is called right when more than ``cutoff`` of its cells
    are called ALL, a healthy donor when fewer are."""
    right = 0
    for d in per_donor.values():
        share = float(d["share_called_all"])
        right += (share > cutoff) if d["class"] == "ALL" else (share < cutoff)
    return right, len(per_donor)


def held_out_block(per_subject: Mapping[str, Mapping[str, Any]], per_class: Mapping[str, Mapping[str, Any]],
                   description: str) -> dict:
    """The card's ``metrics.held_out`` block from training metrics (``per_subject_accuracy`` and ``per_class``)."""
    per_donor = {}
    for s, d in per_subject.items():
        acc = float(d["accuracy"])
        per_donor[s] = {"class": d["class"], "n_cells": int(d["n"]), "accuracy": round(acc, 4),
                        "share_called_all": round(acc if d["class"] == "ALL" else 1 - acc, 4)}
    hem = [d["accuracy"] for d in per_donor.values() if d["class"] == "HEM"]
    right, n = case_level(per_donor)
    return {
        "description": description,
        "n_donors": n,
        "n_all_patients": sum(d["class"] == "ALL" for d in per_donor.values()),
        "n_healthy_donors": len(hem),
        "n_cells": sum(d["n_cells"] for d in per_donor.values()),
        "hem_recall": round(float(per_class["HEM"]["recall"]), 4),
        "all_recall": round(float(per_class["ALL"]["recall"]), 4),
        "healthy_donor_accuracy_mean": round(sum(hem) / len(hem), 4) if hem else None,
        "healthy_donor_accuracy_worst": round(min(hem), 4) if hem else None,
        "healthy_donors_below_0_7": sum(a < 0.7 for a in hem),
        "donors_called_right": right,
        "per_donor": per_donor,
    }


def plain_words(held_out: Mapping[str, Any] | None) -> list[str]:
    """Sentences for a person; [] when the card has no held-out block (older cards)."""
    if not held_out:
        return []
    h = held_out
    out = [
        f"Measured on {h['n_donors']} donors the model never saw in training ({h['n_all_patients']} with ALL, "
        f"{h['n_healthy_donors']} healthy; {h['n_cells']:,} cells): {_tenths(h['hem_recall'])} normal cells "
        f"called normal, {_tenths(h['all_recall'])} leukemic cells called ALL.",
    ]
    if h.get("healthy_donor_accuracy_worst") is not None:
        out.append(
            f"Healthy donors: on average {_tenths(h['healthy_donor_accuracy_mean'])} of their cells called normal; "
            f"the worst donor {_tenths(h['healthy_donor_accuracy_worst'])}; {h['healthy_donors_below_0_7']} of "
            f"{h['n_healthy_donors']} donors below 7 of 10.")
    out.append(
        f"Whole-case call (share of cells called ALL above or below one half): {h['donors_called_right']} of "
        f"{h['n_donors']} donors right.")
    healthy = [d for d in (h.get("per_donor") or {}).values() if d.get("class") == "HEM"]
    if healthy:
        ok = sum(float(d["share_called_all"]) < 0.5 for d in healthy)
        out.append(f"Healthy donors called healthy as a whole case: {ok} of {len(healthy)}.")
    out.append(WARNING)
    if h.get("description"):
        out.append(str(h["description"]))
    return out
