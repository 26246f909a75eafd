"""training.scaffold: the fold loop and the run folder shared by the frozen-feature recipes (4.0 cv/probe-fit and
VGG19 2.0)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from training import scaffold


def test_out_of_fold_gives_each_cell_the_logit_of_the_fold_that_held_it_out():
    folds = np.array([0, 1, 2, 0, 1, 2, 2])
    seen = []

    def fit(k, tr, te):
        seen.append((k, tr.tolist(), te.tolist()))
        assert not set(tr) & set(te)
        return np.full(len(te), 10.0 * k + len(tr)), (None if k == 1 else f"C{k}")

    z, chosen = scaffold.out_of_fold(len(folds), scaffold.fold_splits(folds), fit)
    assert z.tolist() == [5.0, 15.0, 24.0, 5.0, 15.0, 24.0, 24.0]  # 10 * fold + its training cells
    assert chosen == ["C0", "C2"]  # a fold that chose nothing (the size-only baseline) adds nothing
    assert [k for k, _, _ in seen] == [0, 1, 2]


def test_out_of_fold_refuses_a_cell_on_both_sides_or_in_no_fold():
    def fit(k, tr, te):
        return np.zeros(len(te)), None

    with pytest.raises(ValueError, match="both trained on and held out"):
        scaffold.out_of_fold(3, [(np.array([0, 1]), np.array([1, 2]))], fit)
    with pytest.raises(ValueError, match="1 cells are in no held-out fold"):
        scaffold.out_of_fold(3, [(np.array([2]), np.array([0, 1]))], fit)


class _Model:
    def save(self, path):
        with open(path, "wb") as fh:
            fh.write(b"keras")


def test_write_run_writes_what_export_reads_with_metrics_last(tmp_path, monkeypatch):
    order = []
    real_write_json = scaffold.write_json
    monkeypatch.setattr(scaffold, "write_json", lambda p, d: (order.append(p.name), real_write_json(p, d))[1])
    real_save_held_out = scaffold.save_held_out
    monkeypatch.setattr(
        scaffold, "save_held_out", lambda *a, **k: (order.append("oof.npz"), real_save_held_out(*a, **k))[1]
    )
    m = SimpleNamespace(subjects=["1", "H2", "3"], paths=["a.bmp", "b.bmp", "c.bmp"])
    run = scaffold.write_run(
        tmp_path / "run",
        _Model(),
        m,
        np.arange(3),
        np.array([1.0, -1.0, 2.0]),
        np.array([1, 0, 1]),
        np.array([0, 1, 0]),
        {"arch": "vgg19"},
    )
    assert (run / "final.keras").read_bytes() == b"keras"
    assert order == ["oof.npz", "metrics.json"]
    oof = np.load(run / "oof.npz")
    assert oof["subjects"].tolist() == ["1", "H2", "3"] and oof["folds"].tolist() == [0, 1, 0]
    assert json.loads((run / "metrics.json").read_text()) == {"arch": "vgg19"}
