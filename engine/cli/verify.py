"""``leukoscan-cli verify CASE.leukoscan``: check a case file's history (only reads it)."""

from __future__ import annotations

import os
from pathlib import Path

from .common import EXIT_BROKEN, EXIT_OK, CliError, add_command

CODES = ("0    intact", "2    usage error, or not a readable case file", "4    broken: the first broken row and why")


def add_parser(sub) -> None:
    v = add_command(
        sub,
        "verify",
        "check a case file's history: 'intact' (exit 0) or the first broken row (exit 4)",
        CODES,
        "leukoscan-cli verify case.leukoscan",
        "leukoscan-cli verify case.leukoscan && leukoscan-cli export case.leukoscan --out final.csv",
    )
    v.add_argument("case_file", metavar="CASE.leukoscan", help="case file to check (only read)")
    v.set_defaults(run=run)


def run(args) -> int:
    from ..case.store import CaseStore, StoreError

    db = Path(os.path.abspath(Path(args.case_file).expanduser()))
    if not db.is_file():
        raise CliError(f"{db}: no such case file")
    try:
        store = CaseStore.open(db, create=False, read_only=True)
    except StoreError as exc:
        raise CliError(f"cannot read the case file: {exc}") from None
    try:
        problem = store.verify()
        rows, head = store.head()
    finally:
        store.close()
    if problem is not None:
        print(f"{db}: broken: {problem}")
        return EXIT_BROKEN
    print(f"{db}: intact ({rows} history rows, chain head {head[:16]})")
    return EXIT_OK
