"""A case as an HL7 FHIR R4 DiagnosticReport with its Observations, as plain JSON (docs/fhir.md has the mapping).

What a laboratory information system takes: one ``Bundle`` (type ``collection``) per export holding, for each case,
a ``DiagnosticReport`` (status ``final`` for a signed-off case, ``preliminary`` when asked for an unsigned one),
its Observations (% blasts with its Wilson 95 % interval as components, the cell counts, the verdict) and the
``Device`` (the model and its version) they come from.  The figures are the case's own report's
(:func:`engine.case.export.cell_rows`, counted by the one case rule).  No FHIR library is needed at run time; the
tests validate the JSON with ``fhir.resources``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from . import __version__
from .case.document import CaseDocument
from .case.values import Case, utc_now
from .report import count_rows

#: Our code system (the codes below); a LIS maps them to its own (e.g. LOINC) codes.
CODES = "urn:leukoscan:fhir:code"
SAMPLE_ID = "urn:leukoscan:sample-id"
CHAIN_HEAD = "urn:leukoscan:record-chain-head"
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service section: HM = hematology
INTENDED_USE = "Research tool, not a diagnostic device: every call is a suggestion for a trained person to review."
_NS = uuid.UUID("5d0c5a52-5e0b-4f7e-8a8e-1f8c1e9d3b21")  # ids derived from the record: the same case, the same ids


class NotSignedOff(ValueError):
    """The case is not signed off (or its sign-off no longer covers its images) and no preliminary was asked."""


@dataclass(frozen=True)
class Record:
    """What the export pins the report to: the case file and the end of its history chain."""

    case_file: str
    chain_head: str


def _code(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": CODES, "code": code, "display": display}], "text": display}


def _pct(value: float) -> dict[str, Any]:
    return {"value": round(value, 1), "unit": "%", "system": UCUM, "code": "%"}


def _component(code: str, display: str, value: dict[str, Any] | int) -> dict[str, Any]:
    key = "valueInteger" if isinstance(value, int) else "valueQuantity"
    return {"code": _code(code, display), key: value}


def _urn(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, chr(31).join(parts))}"


def case_resources(doc: CaseDocument, case: Case, record: Record, preliminary: bool = False) -> list[dict[str, Any]]:
    """The Bundle entries of one case: DiagnosticReport, Observations, Device.  Raises :class:`NotSignedOff` for
    an unsigned case (or one whose images are not the ones signed off) unless ``preliminary``."""
    from .case.export import cell_rows

    so = case.signoff
    moved = doc.signoff_mismatch(case) if so is not None else ""
    final = so is not None and not moved
    if not final and not preliminary:
        why = f"its images are not the ones signed off ({moved})" if moved else "it is not signed off"
        raise NotSignedOff(f"{case.label}: {why}; sign it off in the app first, or export it as --preliminary")
    facts = doc.current
    if facts is None or doc.threshold is None:
        raise ValueError(f"{case.label}: no model has classified it")
    cc = count_rows(cell_rows(doc, doc.cells_of(case)))
    status = "final" if final else "preliminary"
    issued = so.at if final and so is not None else utc_now()
    key = (record.chain_head, case.root)
    ids = {k: _urn(*key, k) for k in ("report", "pct", "counts", "verdict", "device")}
    method = {"text": f"LeukoScan {__version__}, model {facts.name} {facts.version}, threshold {doc.threshold:.3f}"}
    device = {"reference": ids["device"], "display": f"{facts.name} {facts.version}"}

    def observation(name: str, code: dict[str, Any], **value: Any) -> dict[str, Any]:
        return {
            "fullUrl": ids[name],
            "resource": {
                "resourceType": "Observation",
                "status": status,
                "category": [{"coding": [{"system": V2_0074, "code": "HM", "display": "Hematology"}]}],
                "code": code,
                "issued": issued,
                "method": method,
                "device": device,
                **value,
            },
        }

    pct, ci = cc.pct_blasts, cc.pct_interval
    n = cc.all + cc.hem
    verdict = (
        f"Blasts (ALL): {pct:.1f} % (95 % CI {ci[0]:.1f}-{ci[1]:.1f}) of {n} cells counted"
        if pct is not None and ci is not None
        else "Blasts (ALL): no cell could be counted"
    )
    if cc.excluded:
        verdict += f" ({cc.excluded} excluded, not counted)"
    if cc.pending:
        verdict += f"; INCOMPLETE: {cc.pending} of {cc.cells} images not classified"
    pct_obs: dict[str, Any] = (
        {
            "valueQuantity": _pct(pct),
            "component": [
                _component("blasts-pct-ci-low", "% blasts, Wilson 95 % interval, low", _pct(ci[0])),
                _component("blasts-pct-ci-high", "% blasts, Wilson 95 % interval, high", _pct(ci[1])),
            ],
        }
        if pct is not None and ci is not None
        else {"dataAbsentReason": {"text": "no cell counted (all excluded or unreadable)"}}
    )
    counts = [
        ("cells", "images in the case", cc.cells),
        ("cells-included", "cells counted for % blasts (ALL + HEM)", n),
        ("cells-all", "cells counted as ALL (blasts)", cc.all),
        ("cells-hem", "cells counted as HEM (normal)", cc.hem),
        ("cells-excluded", "cells excluded (failed QC, or by a reviewer)", cc.excluded),
        ("cells-unreadable", "images that could not be classified", cc.errors),
        ("cells-not-classified", "images not classified (an interrupted run)", cc.pending),
    ]
    identifiers = [{"system": CHAIN_HEAD, "value": record.chain_head}]
    if case.sample_id:
        identifiers.insert(0, {"system": SAMPLE_ID, "value": case.sample_id})
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "identifier": identifiers,
        "status": status,
        "category": [{"coding": [{"system": V2_0074, "code": "HM", "display": "Hematology"}]}],
        "code": _code("leukoscan-case", "Single-cell blood smear classification, ALL blast vs normal (LeukoScan)"),
        "issued": issued,
        "result": [{"reference": ids[k]} for k in ("pct", "counts", "verdict")],
        "conclusion": f"{verdict}. {INTENDED_USE}",
    }
    if final and so is not None:
        report["resultsInterpreter"] = [{"display": so.by}]
    return [
        {"fullUrl": ids["report"], "resource": report},
        observation("pct", _code("blasts-pct", "% blasts (ALL) of the cells counted"), **pct_obs),
        observation(
            "counts",
            _code("cell-counts", "Cell counts"),
            component=[_component(c, d, v) for c, d, v in counts],
        ),
        observation("verdict", _code("verdict", "Verdict"), valueString=verdict),
        {
            "fullUrl": ids["device"],
            "resource": {
                "resourceType": "Device",
                "deviceName": [{"name": facts.name, "type": "model-name"}],
                "version": [{"value": facts.version}],
                "note": [{"text": f"{facts.display_name or facts.name}; LeukoScan {__version__}. {INTENDED_USE}"}],
            },
        },
    ]


def bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A FHIR ``Bundle`` of type ``collection`` around the entries of :func:`case_resources`."""
    return {"resourceType": "Bundle", "type": "collection", "timestamp": utc_now(), "entry": entries}
