"""``leukoscan-cli summary STORE_OR_FOLDER...``: one row per case across any number of case files (only read), by
:mod:`engine.case.summary`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from .common import (
    EXIT_BROKEN,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_command,
    add_delimiter,
    check_output,
    delimiter,
    emit_json,
    is_stdout,
    real,
    say,
    shown,
    warn,
    write_or_rescue,
)

SCHEMA = "leukoscan.summary/1"
CODES = (
    "0    every case file was read and its record is intact",
    "1    the table could not be written where asked (then saved in the temp folder, see message)",
    "2    usage error, no case file found, or a case file could not be read (its row says why)",
    "4    a case file's record is broken (its rows say 'record broken' and where)",
)
_INTS = ("cells", "included", "excluded", "chain_rows")
_FLOATS = ("pct_all", "pct_all_ci_low", "pct_all_ci_high")


def add_parser(sub) -> None:
    s = add_command(
        sub,
        "summary",
        "one row per case across case files: sample id, cells, percent blasts with its interval, verdict, sign-off",
        CODES,
        "leukoscan-cli summary /lab/cases/2026-12 -o december.csv",
        "leukoscan-cli summary a.leukoscan b.leukoscan --json | jq '.cases[] | select(.verdict != \"signed off\")'",
    )
    s.add_argument(
        "paths",
        nargs="+",
        metavar="STORE_OR_FOLDER",
        help="a case file, or a folder searched recursively for *.leukoscan case files",
    )
    s.add_argument(
        "-o",
        "--out",
        metavar="SUMMARY.csv",
        default=None,
        help="write the table as CSV to this file (- or no --out and no --json: stdout)",
    )
    s.add_argument("--json", action="store_true", help=f"print the rows as JSON on stdout (schema {SCHEMA})")
    s.add_argument("--bom", "--excel", action="store_true", dest="bom", help="CSV with a UTF-8 byte-order mark")
    add_delimiter(s)
    s.add_argument("--force", action="store_true", help="replace --out even when the existing file is read-only")
    s.set_defaults(run=run)


def _typed(row: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = dict(row)
    for k in _INTS:
        out[k] = int(row[k]) if row[k] else None
    for k in _FLOATS:
        out[k] = float(row[k]) if row[k] else None
    return out


def run(args) -> int:
    from ..case.summary import BROKEN, COLUMNS, UNREADABLE, find_case_files, summarize_case_files
    from ..report import write_csv, write_csv_stream

    out_arg = args.out if args.out is not None else (None if args.json else "-")
    if args.json and out_arg == "-":
        raise CliError("--json and --out - both write to stdout: give --out a file name")
    files, problems = find_case_files(args.paths)
    for p in problems:
        warn(p)
    if not files:
        raise CliError("no case file found in " + ", ".join(args.paths))
    out = check_output(Path(out_arg), "--out", {real(f) for f in files}, args.force, stdout=True) if out_arg else None
    rows = summarize_case_files(files)
    where = None
    code = EXIT_OK
    if out is not None and is_stdout(out):
        sys.stdout.flush()
        write_csv_stream(sys.stdout.buffer, COLUMNS, rows, bom=args.bom, delimiter=delimiter(args))
        sys.stdout.buffer.flush()
        where = out
    elif out is not None:
        where, ok = write_or_rescue(
            "summary", out, lambda path, rs: write_csv(path, COLUMNS, rs, bom=args.bom, delimiter=delimiter(args)), rows
        )
        code = code if ok else 1
    states = Counter(r["verdict"] for r in rows)
    if states[BROKEN]:
        code = EXIT_BROKEN
    elif states[UNREADABLE] or problems:
        code = max(code, EXIT_USAGE)
    say(
        f"{len(rows)} case(s) in {len(files)} case file(s): "
        + ", ".join(f"{n} {state}" for state, n in states.most_common())
        + ("" if where is None else f"; table: {'stdout' if is_stdout(where) else where}")
    )
    if args.json:
        emit_json(
            SCHEMA,
            {
                "exit_code": code,
                "case_files": [str(f) for f in files],
                "out": shown(where),
                "cases": list(map(_typed, rows)),
            },
        )
    return code
