"""Results a laboratory information system can take (issue 28 item 4): a signed-off case as an HL7 FHIR
DiagnosticReport with its Observations, validated with the fhir.resources library (R4B models: FHIR 4.3, the
R4-compatible update; the engine itself writes plain JSON and never imports it); unsigned cases refused unless
--preliminary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.case.export import export_store
from engine.case.store import CaseStore
from engine.cli import main

fhir_bundle = pytest.importorskip("fhir.resources.R4B.bundle")


@pytest.fixture(autouse=True)
def _only_given_models(_no_bundled_models):
    pass


def _case(cells_dir: Path, models: Path, tmp_path: Path) -> Path:
    case = tmp_path / "slide_0423"
    shutil.copytree(cells_dir, case)
    db = tmp_path / "case.leukoscan"
    common = ["--model", "tiny_a", "--models-dir", str(models), "--no-progress", "-q"]
    assert main(["classify", str(case), "--out", str(tmp_path / "r.csv"), "--store", str(db), *common]) == 0
    return db


def _sign_off(db: Path, sample_id: str = "S-2026-0423") -> None:
    store = CaseStore.open(db)
    doc = store.load()
    store.attach(doc)
    (case,) = doc.cases.values()
    doc.review([c for c in doc.cells if c.status == "ok"], "accept", "ann")
    doc.set_sample_id(case, sample_id)
    doc.sign_off(case, "Dr. Ada Lovelace")
    store.close()


def _validated(path: Path):
    data = json.loads(path.read_text(encoding="utf-8"))
    return data, fhir_bundle.Bundle.model_validate(data)  # raises on anything FHIR does not allow


def _by_type(data: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in data["entry"]:
        out.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    return out


def test_a_signed_off_case_is_a_valid_final_diagnostic_report(cells_dir, tiny_models_dir, tmp_path, capsys):
    db = _case(cells_dir, tiny_models_dir, tmp_path)
    _sign_off(db)
    out = tmp_path / "case.fhir.json"
    assert main(["fhir", str(db), "-o", str(out)]) == 0
    data, parsed = _validated(out)
    assert parsed.type == "collection"
    res = _by_type(data)
    (report,) = res["DiagnosticReport"]
    (device,) = res["Device"]
    obs = {o["code"]["coding"][0]["code"]: o for o in res["Observation"]}
    assert report["status"] == "final" and all(o["status"] == "final" for o in obs.values())
    assert report["resultsInterpreter"] == [{"display": "Dr. Ada Lovelace"}]
    ids = {i["system"]: i["value"] for i in report["identifier"]}
    assert ids["urn:leukoscan:sample-id"] == "S-2026-0423"
    store = CaseStore.open(db, create=False, read_only=True)
    doc, head = store.load(), store.head()
    store.close()
    (case,) = doc.cases.values()
    assert ids["urn:leukoscan:record-chain-head"] == head[1] and report["issued"] == case.signoff.at
    full_urls = {e["fullUrl"] for e in data["entry"]}
    assert {r["reference"] for r in report["result"]} <= full_urls
    # the figures are the case's own summary's
    (total,) = export_store(db, tmp_path / "e.csv", tmp_path / "e_s.csv", mark_exported=False).summary
    pct = obs["blasts-pct"]
    assert pct["valueQuantity"]["value"] == float(total["pct_all"]) and pct["valueQuantity"]["code"] == "%"
    low, high = (c["valueQuantity"]["value"] for c in pct["component"])
    assert (low, high) == (float(total["pct_all_ci_low"]), float(total["pct_all_ci_high"]))
    counts = {c["code"]["coding"][0]["code"]: c["valueInteger"] for c in obs["cell-counts"]["component"]}
    assert counts["cells"] == int(total["cells"]) == 8
    assert counts["cells-all"] == int(total["all"]) and counts["cells-hem"] == int(total["hem"])
    assert counts["cells-included"] == counts["cells-all"] + counts["cells-hem"]
    assert total["pct_all"] in obs["verdict"]["valueString"]
    assert device["deviceName"][0]["name"] == "tiny_a" and device["version"][0]["value"] == doc.current.version
    assert all(
        o["device"]["reference"] == next(e["fullUrl"] for e in data["entry"] if e["resource"] is device)
        for o in obs.values()
    )
    assert "tiny_a" in pct["method"]["text"]


def test_an_unsigned_case_is_refused_unless_preliminary(cells_dir, tiny_models_dir, tmp_path, capsys):
    db = _case(cells_dir, tiny_models_dir, tmp_path)
    out = tmp_path / "case.fhir.json"
    assert main(["fhir", str(db), "-o", str(out)]) == 2
    assert "not signed off" in capsys.readouterr().err and not out.exists()
    assert main(["fhir", str(db), "-o", str(out), "--preliminary"]) == 0
    assert "preliminary" in capsys.readouterr().err
    data, _ = _validated(out)
    (report,) = _by_type(data)["DiagnosticReport"]
    assert report["status"] == "preliminary" and "resultsInterpreter" not in report


def test_fhir_to_stdout_and_an_unknown_case(cells_dir, tiny_models_dir, tmp_path, capsys):
    db = _case(cells_dir, tiny_models_dir, tmp_path)
    _sign_off(db)
    capsys.readouterr()
    assert main(["fhir", str(db), "-o", "-", "--case", "S-2026-0423"]) == 0
    fhir_bundle.Bundle.model_validate(json.loads(capsys.readouterr().out))
    assert main(["fhir", str(db), "-o", "-", "--case", "nope"]) == 2
    assert "--case nope: no such case" in capsys.readouterr().err
