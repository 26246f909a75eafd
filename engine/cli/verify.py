"""``leukoscan-cli verify CASE.leukoscan [--report FILE]``: check a case file's history (only reads it), and with
``--report`` against the chain head a report printed (:mod:`engine.case.anchor`)."""

from __future__ import annotations

import os
from pathlib import Path

from .common import EXIT_BROKEN, EXIT_OK, CliError, add_command, emit_json

SCHEMA = "leukoscan.verify/1"
CODES = (
    "0    intact (and, with --report, still holding what the report printed; rows added since are listed)",
    "2    usage error, not a readable case file, or --report names no case record",
    "4    broken: the first broken row and why; or, with --report, truncated or rewritten since the report",
)


def add_parser(sub) -> None:
    v = add_command(
        sub,
        "verify",
        "check a case file's history: 'intact' (exit 0) or the first broken row (exit 4)",
        CODES,
        "leukoscan-cli verify case.leukoscan && leukoscan-cli export case.leukoscan --out final.csv",
        "leukoscan-cli verify case.leukoscan --report signed_case.pdf   # not truncated or rewritten since",
    )
    v.add_argument("case_file", metavar="CASE.leukoscan", help="case file to check (only read)")
    v.add_argument(
        "--report",
        metavar="FILE",
        help="a PDF or summary CSV printed from this case file earlier: the record must still hold the history "
        "it printed (its length and chain head); a truncated or re-hashed record is found",
    )
    v.add_argument("--json", action="store_true", help=f"print the result as JSON on stdout (schema {SCHEMA})")
    v.set_defaults(run=run)


def run(args) -> int:
    from ..case.anchor import AnchorError, read_anchor
    from ..case.store import CaseStore, StoreError

    db = Path(os.path.abspath(Path(args.case_file).expanduser()))
    if not db.is_file():
        raise CliError(f"{db}: no such case file")
    anchor = None
    if args.report:
        try:
            anchor = read_anchor(Path(args.report).expanduser())
        except (OSError, AnchorError) as exc:
            raise CliError(f"--report: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        store = CaseStore.open(db, create=False, read_only=True)
    except StoreError as exc:
        raise CliError(f"cannot read the case file: {exc}") from None
    try:
        problem = store.verify()
        rows, head = store.head()
        against = store.compare(anchor) if anchor is not None else None
    finally:
        store.close()
    if args.json:
        return _json(db, problem, rows, head, args.report, against)
    if problem is not None:
        print(f"{db}: broken: {problem}")
        return EXIT_BROKEN
    if against is not None and not against[0]:
        print(f"{db}: against {args.report}: {against[1][0]}")
        return EXIT_BROKEN
    print(f"{db}: intact ({rows} history rows, chain head {head[:16]})")
    if against is not None:
        print(f"against {args.report}: " + "\n".join(against[1]))
    return EXIT_OK


def _json(db: Path, problem, rows: int, head: str, report: str | None, against) -> int:
    """``verify --json``: the same verdict as the text, one document on stdout (the exit status is the text's)."""
    ok = problem is None and (against is None or against[0])
    code = EXIT_OK if ok else EXIT_BROKEN
    emit_json(
        SCHEMA,
        {
            "exit_code": code,
            "case_file": str(db),
            "intact": problem is None,
            "problem": None if problem is None else str(problem),
            "chain_rows": rows,
            "chain_head": head,
            "report": None
            if against is None
            else {"file": report, "holds": bool(against[0]), "notes": list(against[1])},
        },
    )
    return code
