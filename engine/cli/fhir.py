"""``leukoscan-cli fhir CASE.leukoscan -o REPORT.json``: a signed-off case as an HL7 FHIR R4 DiagnosticReport with its
Observations (:mod:`engine.fhir`; only reads the case file)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .common import (
    EXIT_OK,
    EXIT_WRITE,
    CliError,
    add_command,
    broken,
    check_output,
    is_stdout,
    real,
    say,
    warn,
    write_or_rescue,
)

CODES = (
    "0    written",
    "1    the file could not be written where asked (then saved in the temp folder, see message)",
    "2    usage error, unreadable case file, no such case, or a case not signed off without --preliminary",
    "4    the case file's record is broken: nothing written",
)


def add_parser(sub) -> None:
    f = add_command(
        sub,
        "fhir",
        "write signed-off cases of a case file as an HL7 FHIR R4 DiagnosticReport bundle (JSON) for a LIS",
        CODES,
        "leukoscan-cli fhir case.leukoscan -o case.fhir.json",
        "leukoscan-cli fhir case.leukoscan --case S-2026-0423 --preliminary -o - | curl -d @- ...",
    )
    f.add_argument("case_file", metavar="CASE.leukoscan", help="case file to read (only read)")
    f.add_argument(
        "-o", "--out", required=True, metavar="REPORT.json", help="the FHIR Bundle (JSON) to write; - for stdout"
    )
    f.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="ID",
        help="only this case: its sample id, name or folder (repeatable; default: every case of the file)",
    )
    f.add_argument(
        "--preliminary",
        action="store_true",
        help="also export cases that are not signed off, as status 'preliminary' (default: refused)",
    )
    f.add_argument("--force", action="store_true", help="replace --out even when the existing file is read-only")
    f.set_defaults(run=run)


def _pick(doc, wanted: list[str]):
    if not wanted:
        return list(doc.cases.values())
    picked = []
    for w in wanted:
        hit = next((c for c in doc.cases.values() if w in (c.sample_id, c.name, c.root)), None)
        if hit is None:
            known = ", ".join(c.label for c in doc.cases.values())
            raise CliError(f"--case {w}: no such case in the file (cases: {known})")
        picked.append(hit)
    return picked


def run(args) -> int:
    from ..case.store import CaseStore, StoreError
    from ..fhir import NotSignedOff, Record, bundle, case_resources

    db = Path(os.path.abspath(Path(args.case_file).expanduser()))
    if not db.is_file():
        raise CliError(f"{db}: no such case file")
    out = check_output(Path(args.out), "--out", {real(db)}, args.force, stdout=True)
    try:
        store = CaseStore.open(db, create=False, read_only=True)
    except StoreError as exc:
        raise CliError(f"cannot read the case file: {exc}") from None
    try:
        problem = store.verify()
        if problem is not None:
            raise broken(db, problem)
        _rows, head = store.head()
        doc = store.load()
    except StoreError as exc:
        raise CliError(f"cannot read the case file: {exc}") from None
    finally:
        store.close()
    record = Record(str(db), head)
    entries = []
    try:
        for case in _pick(doc, args.case):
            entries += case_resources(doc, case, record, preliminary=args.preliminary)
    except NotSignedOff as exc:
        raise CliError(f"{exc}; nothing written") from None
    except ValueError as exc:
        raise CliError(f"{db}: {exc}; nothing written") from None
    if not entries:
        raise CliError(f"{db} holds no case; nothing written")
    data = json.dumps(bundle(entries), indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    reports = [e["resource"] for e in entries if e["resource"]["resourceType"] == "DiagnosticReport"]
    n, prelim = len(reports), sum(r["status"] == "preliminary" for r in reports)
    if prelim:
        warn(f"{prelim} report(s) are preliminary: the case is not signed off")
    if is_stdout(out):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        say(f"{n} DiagnosticReport(s) from {db}: stdout")
        return EXIT_OK
    from ..fileio import atomic_open

    def write(path: Path, _rows) -> Path:
        with atomic_open(path, public=True, mode="wb") as fh:
            fh.write(data)
        return path

    where, ok = write_or_rescue("FHIR report", out, write, [])
    say(f"{n} DiagnosticReport(s) from {db}: {where}")
    return EXIT_OK if ok else EXIT_WRITE
