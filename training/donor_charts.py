"""Per-donor accuracy charts of model cards for docs/models.md (the app's card view draws the same bars itself).

``python -m training.donor_charts`` draws ``docs/img/<name>_donors.png`` for every card in resources/models;
``python -m training.donor_charts CARD.json ... --out DIR`` for other cards (an ensemble's members are looked up
beside it).  Run it again whenever the models change: the bars come from the cards' ``metrics.held_out`` only, with
the same rules as the app (``engine.heldout.donor_chart``: share of each donor's cells called right, healthy donors
and patients apart, hatched when the shipped model saw the donor in training).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.card import load_card
from engine.heldout import donor_chart

REPO = Path(__file__).resolve().parents[1]
HEM_COLOR, ALL_COLOR = "#2471a3", "#c0392b"  # gui.style's HEM and ALL colours


def _label(card) -> str:
    return f"{card.display_name} {card.version}"


def draw(card, member_cards=(), out: Path | None = None, title: str | None = None) -> Path | None:
    """One PNG of ``card``'s per-donor bars; None (nothing written) for a card without per-donor numbers."""
    import textwrap

    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    chart = donor_chart(card, member_cards)
    if chart is None:
        return None
    bars = list(chart.healthy) + list(chart.patients)
    gap = 1 if chart.healthy and chart.patients else 0
    xs = [i for i in range(len(chart.healthy))] + [len(chart.healthy) + gap + i for i in range(len(chart.patients))]
    fig = Figure(figsize=(max(5.0, 1.2 + 0.24 * (len(bars) + gap)), 3.4), dpi=120)
    ax = fig.subplots()
    for x, b in zip(xs, bars):
        color = HEM_COLOR if b.cls == "HEM" else ALL_COLOR
        ax.bar(
            x,
            max(b.share_right, 0.004),
            width=0.78,
            color=color,
            alpha=0.45 if b.seen_in_training else 1.0,
            hatch="///" if b.seen_in_training else None,
            edgecolor=color,
            linewidth=0.8,
        )
        if b.baseline is not None:
            ax.plot([x - 0.45, x + 0.45], [b.baseline, b.baseline], color="black", lw=2)
        if len(bars) <= 16:
            ax.text(x, b.share_right + 0.02, f"{b.share_right:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(0.5, color=ALL_COLOR, ls="--", lw=0.8)
    ax.set_xticks(xs, [b.donor for b in bars], rotation=90 if len(bars) > 16 else 0, fontsize=7)
    ax.set_ylim(0, 1.12)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel("share of cells called right", fontsize=8)
    ax.set_xlim(-0.7, xs[-1] + 0.7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for group, name in ((chart.healthy, "healthy donors"), (chart.patients, "patients with ALL")):
        if group:
            first = xs[bars.index(group[0])]
            ax.text(first + (len(group) - 1) / 2, 1.08, f"{name} ({len(group)})", ha="center", fontsize=8)
    handles = (
        [Patch(facecolor="#777", label="never seen by the shipped model")]
        if any(b.seen_in_training is not True for b in bars)
        else []
    )
    if any(b.seen_in_training for b in bars):
        handles.append(Patch(facecolor="#777", alpha=0.45, hatch="///", label="seen in its training"))
    handles.append(Patch(facecolor="none", edgecolor=ALL_COLOR, ls="--", label="below 0.5: case called wrong"))
    if any(b.baseline is not None for b in bars):
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", lw=2, label="cell size alone"))
    wide = len(bars) > 16
    ax.legend(
        handles=handles, fontsize=6.5, loc="lower left", bbox_to_anchor=(0, 1.09), ncol=4 if wide else 2, frameon=False
    )
    ax.set_title(title or _label(card), fontsize=9, pad=30 if wide else 40)
    lines = textwrap.wrap(chart.caption, 190 if wide else 100)
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=6, va="bottom")
    fig.tight_layout(rect=(0, 0.01 + 0.03 * len(lines), 1, 1))
    out = Path(out or REPO / "docs" / "img" / f"{card.name}_donors.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    from engine.fileio import atomic_open

    with atomic_open(out, mode="wb", public=True) as fh:
        fig.savefig(fh, format="png")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.donor_charts", description=__doc__.split("\n\n")[0])
    ap.add_argument("cards", nargs="*", type=Path, help="card JSON files (default: resources/models/*.json)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="folder of the PNGs (default docs/img)")
    ap.add_argument("--suffix", default="", help="added to each PNG's name, e.g. _2.0 for a previous release")
    args = ap.parse_args(argv)
    paths = args.cards or sorted((REPO / "resources" / "models").glob("*.json"))
    cards = [load_card(p) for p in paths]
    neighbours = {c.name: c for p in paths for c in (load_card(q) for q in p.parent.glob("*.json"))}
    for card in cards:
        out = draw(card, list(neighbours.values()), args.out / f"{card.name}{args.suffix}_donors.png")
        print(f"{card.name}: {out or 'no per-donor numbers in the card, nothing drawn'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
