"""What leukoscan-train writes goes through engine.fileio's atomic writers (training/files.py), and the e2e
checkpoint switches folders through an atomic ``latest.json``: an interruption never leaves half a file."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from training import files

TRAINING = Path(__file__).resolve().parents[2] / "training"


def test_save_npz_writes_exactly_the_path_and_failures_leave_the_old_file(tmp_path):
    p = files.save_npz(tmp_path / "sub" / "oof.npz", logits=np.arange(3.0), labels=np.array([1, 0, 1]))
    assert p.exists() and not (tmp_path / "sub" / "oof.npz.npz").exists()
    assert np.load(p)["logits"].tolist() == [0.0, 1.0, 2.0]

    class Boom:
        def __array__(self, *a, **k):
            raise ValueError("the writer failed half-way")

    with pytest.raises(ValueError):
        files.save_npz(p, logits=np.zeros(2), bad=Boom())
    assert np.load(p)["labels"].tolist() == [1, 0, 1]
    assert sorted(q.name for q in p.parent.iterdir()) == ["oof.npz"]


def test_save_figure_takes_the_format_from_the_suffix_and_copy_file_is_whole(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    png = files.save_figure(fig, tmp_path / "curves.png")
    plt.close(fig)
    assert png.read_bytes().startswith(b"\x89PNG")
    copy = files.copy_file(png, tmp_path / "img" / "model_curves.png")
    assert copy.read_bytes() == png.read_bytes()
    assert sorted(q.name for q in copy.parent.iterdir()) == ["model_curves.png"]


# the writers training code must not call directly (each one writes in place or by a hand-written tmp+rename)
_IN_PLACE = {
    "savez",
    "savez_compressed",
    "save",
    "save_weights",
    "save_model",
    "savefig",
    "write_text",
    "write_bytes",
    "dump",
    "replace",
    "rename",
    "copy2",
    "copyfile",
    "move",
}
# calls that look alike but are not direct file writes of training code
_ALLOWED = {
    ("run", "save"),
    ("state", "save"),
}  # training.e2e._Run.save: atomic (tested below)


#: writers whose second argument is the destination (the first is what is copied or moved)
_TWO_PATHS = {"replace", "rename", "copy2", "copyfile", "move"}
#: context managers whose bound name is a private place to write: files.saving()'s and engine.fileio.atomic_open()'s
#: temp name or handle, a tempfile.TemporaryDirectory() nobody else reads
_PRIVATE = {"saving", "atomic_open", "TemporaryDirectory"}


def _temps(tree: ast.AST) -> set[str]:
    """Names bound by ``with <private>(...) as name``, and names assigned from an expression using one
    (``src = Path(tmp) / "fp32.onnx"``); "scratch" is e2e's float32 copy that is converted, then deleted."""
    temps = {"scratch"} | {
        item.optional_vars.id
        for node in ast.walk(tree)
        if isinstance(node, ast.With)
        for item in node.items
        if isinstance(item.optional_vars, ast.Name)
        and isinstance(item.context_expr, ast.Call)
        and getattr(item.context_expr.func, "id", getattr(item.context_expr.func, "attr", "")) in _PRIVATE
    }
    assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and len(n.targets) == 1]
    for _ in range(3):  # derived names, a few levels deep
        for node in assigns:
            if isinstance(node.targets[0], ast.Name) and any(
                isinstance(a, ast.Name) and a.id in temps for a in ast.walk(node.value)
            ):
                temps.add(node.targets[0].id)
    return temps


def _direct_writes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    temps = _temps(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _IN_PLACE):
            continue
        owner = node.func.value
        name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
        if (name, node.func.attr) in _ALLOWED or name in ("files", "fileio"):
            continue
        if node.func.attr == "replace" and name != "os" and len(node.args) >= 2:
            continue  # str.replace(old, new)
        dest = node.args[1:2] if node.func.attr in _TWO_PATHS else node.args
        if any(isinstance(a, ast.Name) and a.id in temps for arg in dest for a in ast.walk(arg)):
            continue  # writes to a temp name (also as str(tmp))
        found.append(f"{path.name}:{node.lineno} {name}.{node.func.attr}")
    return found


def test_training_code_writes_files_only_through_training_files():
    """Old code: six hand-written tmp+replace copies, np.savez/model.save/savefig straight to the target, and
    the quantised card written in place (export_run.py); and a hand-listed set of modules that missed the newer
    ones (``python -m training.cam`` restored a model with a plain copy over it)."""
    own = sorted(p.name for p in TRAINING.glob("*.py") if p.name != "files.py")  # every module but the writers
    found = [w for f in own if (TRAINING / f).exists() for w in _direct_writes(TRAINING / f)]
    assert not found, found


def test_e2e_checkpoint_switches_through_latest_json_and_survives_a_crash_before_the_switch(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")
    from training import e2e

    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    run = e2e._Run(e2e.E2ERecipe(), tmp_path, model, opt, None)

    legacy = tmp_path / "ckpt" / "latest"  # the layout before latest.json: still resumed from, then removed
    legacy.mkdir(parents=True)
    model.save_weights(legacy / "model.weights.h5")
    np.savez(legacy / "optimizer.npz", *[keras.ops.convert_to_numpy(v) for v in opt.variables])
    (legacy / "state.json").write_text(json.dumps({"epochs_done": 1, "step": 7}))
    assert run.restore(lambda s: None) == (1, 7)

    run.save(2, 30)
    folders = [p for p in (tmp_path / "ckpt").iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].name.startswith("e2-s30-")
    assert json.loads((tmp_path / "ckpt" / "latest.json").read_text())["folder"] == folders[0].name
    assert run.restore(lambda s: None) == (2, 30)

    real = e2e.write_json

    def crash_on_switch(path, data):
        if Path(path).name == "latest.json":
            raise OSError("power cut")
        real(path, data)

    monkeypatch.setattr(e2e, "write_json", crash_on_switch)
    with pytest.raises(OSError):
        run.save(3, 0)
    monkeypatch.setattr(e2e, "write_json", real)
    assert run.restore(lambda s: None) == (2, 30)  # the checkpoint before the crash, whole
    run.save(3, 0)
    assert run.restore(lambda s: None) == (3, 0)
    assert len([p for p in (tmp_path / "ckpt").iterdir() if p.is_dir()]) == 1  # the half-written one went too
