"""A model card's held-out results in plain words, for the card view and the CLI's ``models`` listing.

The card's ``metrics.held_out`` block (written by ``leukoscan-train export``) says on which donors the model was
measured, that none of them was seen in training, and how it did per donor.  A technician should not need to read
JSON to learn that, e.g., a model calls 4 of 10 normal cells of its worst healthy donor normal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The one warning that matters, in plain words (card view, CLI ``models``, PDF).
WARNING = (
    "A case unlike the donors the model was trained on can be wrong as a whole: on healthy donors whose "
    "normal cells are larger than usual, earlier models called most cells leukemic. Release 3.0 looked best on a "
    "9-donor panel and transferred worst to 20 patients outside the development data (AUROC 0.69 there; about 1 "
    "in 5 of a healthy donor's cells called normal), so the numbers above are cross-validated by donor over every "
    "subject available, the large-celled healthy donors counted apart; new donors can still be worse."
)


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


def held_out_block(
    per_subject: Mapping[str, Mapping[str, Any]],
    per_class: Mapping[str, Mapping[str, Any]],
    description: str,
    large_celled: Iterable[str] = (),
) -> dict:
    """The card's ``metrics.held_out`` block from training metrics (``per_subject_accuracy`` and ``per_class``);
    ``large_celled``: healthy donors with large normal cells, the ones size-led models fail on (marked per donor
    and summarised apart)."""
    large = set(large_celled)
    per_donor = {}
    for s, d in per_subject.items():
        acc = float(d["accuracy"])
        per_donor[s] = {
            "class": d["class"],
            "n_cells": int(d["n"]),
            "accuracy": round(acc, 4),
            "share_called_all": round(acc if d["class"] == "ALL" else 1 - acc, 4),
            **({"large_celled": True} if s in large else {}),
        }
    hem = [d["accuracy"] for d in per_donor.values() if d["class"] == "HEM"]
    big = [d["accuracy"] for d in per_donor.values() if d["class"] == "HEM" and d.get("large_celled")]
    right, n = case_level(per_donor)
    return {
        **(
            {
                "large_celled_healthy_donors": len(big),
                "large_celled_healthy_accuracy_mean": round(sum(big) / len(big), 4),
                "large_celled_healthy_accuracy_worst": round(min(big), 4),
            }
            if big
            else {}
        ),
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
            f"{h['n_healthy_donors']} donors below 7 of 10."
        )
    if h.get("large_celled_healthy_donors"):
        out.append(
            f"Of these, the {h['large_celled_healthy_donors']} healthy donors with large normal cells (the kind "
            f"earlier models failed on): on average {_tenths(h['large_celled_healthy_accuracy_mean'])} of their "
            f"cells called normal, the worst {_tenths(h['large_celled_healthy_accuracy_worst'])}."
        )
    out.append(
        f"Whole-case call (share of cells called ALL above or below one half): {h['donors_called_right']} of "
        f"{h['n_donors']} donors right."
    )
    healthy = [d for d in (h.get("per_donor") or {}).values() if d.get("class") == "HEM"]
    if healthy:
        ok = sum(float(d["share_called_all"]) < 0.5 for d in healthy)
        out.append(f"Healthy donors called healthy as a whole case: {ok} of {len(healthy)}.")
    out.append(WARNING)
    if h.get("description"):
        out.append(str(h["description"]))
    return out


# ---------------------------------------------------------------- the per-donor chart (app card view, docs)


@dataclass(frozen=True)
class DonorBar:
    """One donor of a card's held-out block: the share of its cells called right (HEM for a healthy donor, ALL for
    a patient), and whether the shipped model saw the donor in training (``None``: the card does not say)."""

    donor: str
    cls: str  # "ALL" | "HEM"
    n_cells: int
    share_right: float
    seen_in_training: bool | None
    #: the same share for the cell-area-only baseline on this donor (3.0 cards: ``held_out.cell_area_baseline``)
    baseline: float | None = None


@dataclass(frozen=True)
class DonorChart:
    healthy: tuple[DonorBar, ...]
    patients: tuple[DonorBar, ...]
    caption: str  # what the bars are and who saw the donors, in plain words

    @property
    def bars(self) -> tuple[DonorBar, ...]:
        return self.healthy + self.patients


#: Donors every model of a card saw in training, when the card says the shipped weights were refit on all of them.
ALL_DONORS = "all"


def donors_seen(card, member_cards=()) -> set[str] | str | None:
    """The donors the shipped model was trained on: a set, :data:`ALL_DONORS` (refit on every development donor),
    or ``None`` when the card does not say.  An ensemble saw a donor when any member did.  ``card`` and
    ``member_cards``: :class:`engine.card.ModelCard` objects (or anything with ``training``, ``members``,
    ``name``)."""
    members = tuple(getattr(card, "members", ()) or ())
    if members:
        by_name = {c.name: c for c in member_cards}
        seen: set[str] = set()
        for m in members:
            s = donors_seen(by_name[m]) if m in by_name else None
            if s is None or isinstance(s, str):  # unknown, or ALL_DONORS
                return s
            seen |= s
        return seen
    t = getattr(card, "training", None) or {}
    shipped = str(t.get("shipped_model") or "")
    if "refit on all" in shipped:
        return ALL_DONORS
    if t.get("train_subjects") is not None:
        return {str(s) for s in t["train_subjects"]}
    return None


def _donor_key(d: str) -> tuple:
    core = d.lstrip("Hh")
    return (int(core) if core.isdigit() else 10**9, d)


def donor_chart(card, member_cards=()) -> DonorChart | None:
    """The per-donor bars of ``card``'s ``metrics.held_out.per_donor``, healthy donors and patients apart (each
    group by donor number); ``None`` for a card without per-donor numbers (older or synthetic cards)."""
    held = (getattr(card, "metrics", None) or {}).get("held_out") or {}
    per = held.get("per_donor") or {}
    if not per:
        return None
    seen = donors_seen(card, member_cards)
    base: dict[str, float] = {}
    for group in ((held.get("cell_area_baseline") or {}).get("donors") or {}).values():
        base.update({str(k): float(v) for k, v in (group.get("per_subject") or {}).items()})

    def bar(d: str, v: Mapping[str, Any]) -> DonorBar:
        share_all = float(v["share_called_all"])
        known = None if seen is None else (True if seen == ALL_DONORS else d in seen)
        return DonorBar(
            d,
            v["class"],
            int(v.get("n_cells", 0)),
            share_all if v["class"] == "ALL" else 1 - share_all,
            known,
            base.get(d),
        )

    bars = [bar(str(d), v) for d, v in sorted(per.items(), key=lambda kv: _donor_key(str(kv[0])))]
    if seen is None:
        who = (
            "Each bar was measured by a model that had not seen that donor; the card does not say which donors "
            "the shipped model was trained on."
        )
    elif seen == ALL_DONORS:
        who = (
            "Each bar was measured by a model that had not seen that donor, but the shipped model"
            + (" (one of its members)" if getattr(card, "members", ()) else "")
            + " was then refit on every development donor: the model you run has seen them all (hatched bars)."
        )
    else:
        never = sum(not b.seen_in_training for b in bars)
        who = (
            "None of these donors was in the shipped model's training (solid bars)."
            if never == len(bars)
            else f"{never} of {len(bars)} donors were never seen by the shipped model (solid bars); the others were in "
            "its training (hatched)."
        )
    caption = (
        "Share of each donor's cells called right (healthy donors: called HEM; patients: called ALL). "
        "Below one half the whole case is called wrong. " + who
    )
    if base:
        caption += " Black ticks: the same share for cell size alone (the baseline every model must beat)."
    return DonorChart(tuple(b for b in bars if b.cls == "HEM"), tuple(b for b in bars if b.cls == "ALL"), caption)


def reliability_table(card) -> dict | None:
    """The card's reliability table (``training.metrics.reliability_bins``: mean P(ALL), share ALL and cells per
    bin of the honest held-out predictions), or ``None`` for cards exported before it was recorded."""
    m = getattr(card, "metrics", None) or {}
    for block in (m.get("held_out") or {}, m.get("validation_honest") or {}):
        rel = block.get("reliability")
        if rel and rel.get("mean_p_all"):
            return dict(rel)
    return None
