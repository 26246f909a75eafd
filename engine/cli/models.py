"""``leukoscan-cli models``: the installed models, their validation metrics, the default and invalid cards."""

from __future__ import annotations

from ..card import ModelError
from ..paths import user_models_dir
from ..registry import default_model, describe_metrics
from .common import EXIT_MODEL, EXIT_OK, add_command, add_models_dir, emit_json, registry

SCHEMA = "leukoscan.models/1"
CODES = (
    "0    listed (invalid cards are listed too)",
    "2    usage error",
    "3    with --check: an invalid card, or a model that fails to load",
)


def add_parser(sub) -> None:
    m = add_command(
        sub,
        "models",
        "list the available models, their validation metrics and invalid cards",
        CODES,
        "leukoscan-cli models --check",
        "leukoscan-cli models --json | jq -r '.models[] | [.name, .version] | @tsv'",
    )
    add_models_dir(m)
    m.add_argument(
        "--check", action="store_true", help="also load every model (checks the ONNX graph against its card; slower)"
    )
    m.add_argument(
        "--json",
        action="store_true",
        help=f"print the list as JSON on stdout (schema {SCHEMA}, see docs/cli.md) instead of a table",
    )
    m.set_defaults(run=run)


def _input(c) -> str:
    if c.is_ensemble:
        return "mean of " + "+".join(c.members)
    h, w = c.input_size
    inp = f"{h}x{w}"
    pre = c.preprocessing
    if pre and (pre.crop_mode == "centroid" or pre.crop_fraction < 1):
        inp += (
            f" window {pre.window_px}px on the cell" if pre.crop_mode == "centroid" else f" crop {pre.crop_fraction:g}"
        )
    return inp


def run(args) -> int:
    reg = registry(args.models_dir)
    cards = reg.cards()
    default = default_model(cards)
    problems = list(reg.problems)
    checks: dict[str, dict] = {}
    if args.check:
        for c in cards:
            try:
                clf = reg.load(c.name, device="cpu")
                checks[c.name] = {"ok": True, "device": clf.device_label, "error": None}
            except ModelError as exc:
                checks[c.name] = {"ok": False, "device": None, "error": str(exc)}
                problems.append(str(exc))
    if args.json:
        emit_json(
            SCHEMA,
            {
                "models": [
                    {
                        "name": c.name,
                        "display_name": c.display_name,
                        "version": c.version,
                        "architecture": c.architecture,
                        "type": c.type,
                        "members": list(c.members),
                        "input": _input(c),
                        "threshold": c.threshold,
                        "review_margin": c.review_margin,
                        "recommended": c.recommended,
                        "default": c.name == default,
                        "validation": describe_metrics(c, limit=1000, data_chars=None),
                        "metrics": c.metrics,
                        "card": str(c.path),
                        **({"check": checks[c.name]} if c.name in checks else {}),
                    }
                    for c in cards
                ],
                "default": default,
                "model_dirs": [str(d) for d in reg.dirs],
                "user_models_dir": str(user_models_dir()),
                "problems": problems,
            },
        )
        return EXIT_MODEL if args.check and problems else EXIT_OK
    rows = [("NAME", "VERSION", "ARCHITECTURE", "INPUT", "THRESHOLD", "VALIDATION")]
    rows += [(c.name, c.version, c.architecture, _input(c), f"{c.threshold:g}", describe_metrics(c)) for c in cards]
    if cards:
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r[:5])) + "  " + r[5])
    else:
        print("No usable models found.")
    if default:
        print(f"\nDefault model (the app opens it; classify uses it without --model): {default}")
    print("\nModel folders: " + ", ".join(str(d) for d in reg.dirs))
    print(f"(add a model: copy <name>.onnx + <name>.json into {user_models_dir()})")
    for name, ck in checks.items():
        if ck["ok"]:
            print(f"check {name}: loads and runs ({ck['device']})")
    if problems:
        print("\nInvalid model cards (not usable):")
        for msg in problems:
            print(f"  - {msg}")
    return EXIT_MODEL if args.check and problems else EXIT_OK
