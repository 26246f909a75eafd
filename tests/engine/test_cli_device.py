"""The GPU route from the command line (issue 28 item 1), with onnxruntime's provider list mocked (no GPU here):
``--device cuda`` without a usable CUDA provider exits 3 saying why; ``auto`` falls back to the CPU and says so on
stderr, in the JSON and in the report."""

from __future__ import annotations

import json
import warnings

import onnxruntime as ort
import pytest

from engine import model as model_mod
from engine.cli import main
from engine.model import CPU, CUDA
from engine.report import read_csv


@pytest.fixture(autouse=True)
def _only_given_models(_no_bundled_models):
    pass


def _args(cells_dir, models, out, *more):
    return ["classify", str(cells_dir), "--out", str(out), "--model", "tiny_a", "--models-dir", str(models), *more]


def test_device_cuda_without_a_cuda_provider_exits_3_and_says_why(
    cells_dir, tiny_models_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    out = tmp_path / "r.csv"
    assert main(_args(cells_dir, tiny_models_dir, out, "--device", "cuda", "--no-progress")) == 3
    err = capsys.readouterr().err
    assert (
        "--device cuda: tiny_a cannot run on CUDA: CUDA was requested but the installed onnxruntime has no CUDA provider"
        in err
    )
    assert "make venv-gpu" in err
    assert not out.exists()  # nothing ran on the CPU behind the user's back


def test_auto_falls_back_and_says_so_on_stderr_in_the_json_and_in_the_report(
    cells_dir, tiny_models_dir, tmp_path, monkeypatch, capsys
):
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])

    def no_gpu(data, sess_options=None, providers=None):
        if providers and CUDA in providers:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(data, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(model_mod.ort, "InferenceSession", no_gpu)
    out = tmp_path / "r.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(_args(cells_dir, tiny_models_dir, out, "--json", "--no-progress")) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["device"] == "CPU" and doc["device_requested"] == "auto"
    assert "no CUDA-capable device" in doc["device_fallback"]
    assert "warning: CUDA session could not be created" in captured.err
    rows = read_csv(out)
    assert all("no CUDA-capable device" in r["device_fallback"] for r in rows)
    # with nothing to fall back from, nothing is said
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    assert main(_args(cells_dir, tiny_models_dir, out, "--json", "--no-progress")) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["device_fallback"] is None and "warning" not in captured.err
    assert all(r["device_fallback"] == "" for r in read_csv(out))
