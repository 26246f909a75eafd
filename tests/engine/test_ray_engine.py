"""``--engine ray``: a local Ray (2 CPUs) gives the local engine's report; dead actors are replaced;
Ctrl-C/SIGTERM leave a partial report; a missing ray is one clear line.  CPU only, tiny models."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine import cli
from engine.registry import Registry

REPO = Path(__file__).resolve().parents[2]
ray = pytest.importorskip("ray", reason="ray is not installed (the 'ray' extra: pip install -e '.[ray]')")

from engine.card import ModelError
from engine.distributed import ray_engine
from engine.distributed.payload import ModelPayload
from engine.pipeline import classify, scan


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module: the engine uses a connection it finds and leaves it open."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _no_bundled_models(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("LEUKOSCAN_RESOURCES_DIR", str(tmp_path_factory.mktemp("no-bundled-resources")))


def _read(p: Path) -> list[dict[str, str]]:
    with open(p, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def mixed_folder(cells_dir) -> Path:
    """The eight real cells, a nested one, and three broken files named like images."""
    good = sorted(cells_dir.glob("*.bmp"))
    (cells_dir / "nested").mkdir()
    shutil.copy(good[0], cells_dir / "nested" / "again.bmp")
    broken = cells_dir / "broken"
    broken.mkdir()
    data = good[1].read_bytes()
    (broken / "truncated.bmp").write_bytes(data[: len(data) // 3])
    (broken / "lab note.bmp").write_bytes(b"not an image, a lab note\n" * 10)
    (broken / "empty.bmp").write_bytes(b"")
    return cells_dir


def _ray_args(*extra: str) -> list[str]:
    return ["--engine", "ray", "--actors", "2", "--batch-size", "3", "--no-progress", *extra]


def test_ray_report_equals_the_local_report(mixed_folder, tiny_models_dir, tmp_path, capsys):
    common = ["classify", str(mixed_folder), "--model", "tiny_ensemble", "--models-dir", str(tiny_models_dir)]
    local, remote = tmp_path / "local.csv", tmp_path / "ray.csv"
    assert cli.main([*common, "--out", str(local), "--summary", str(tmp_path / "ls.csv"), "--no-progress"]) == 0
    assert cli.main([*common, "--out", str(remote), "--summary", str(tmp_path / "rs.csv"), *_ray_args()]) == 0
    err = capsys.readouterr().err
    assert "on Ray (local instance): 2 actor(s) on CPU" in err and "Traceback" not in err
    a, b = _read(local), _read(remote)
    assert len(a) == 12 and [r["path"] for r in b] == [r["path"] for r in a]
    assert list(b[0]) == list(a[0])  # same columns, p_all_<member> included
    scores = ("p_all", "p_all_tiny_a", "p_all_tiny_b")
    for ra, rb in zip(a, b):
        assert {k: v for k, v in rb.items() if k not in scores} == {k: v for k, v in ra.items() if k not in scores}
        for k in scores:
            assert (ra[k] == rb[k] == "") or abs(float(ra[k]) - float(rb[k])) <= 1e-5
    errors = {r["file"]: r["error"] for r in b if r["status"] == "error"}
    assert set(errors) == {"truncated.bmp", "lab note.bmp", "empty.bmp"} and all(errors.values())
    assert _read(tmp_path / "rs.csv") == _read(tmp_path / "ls.csv")


def test_a_ray_run_goes_through_the_operator_with_the_local_runs_sinks(
    cells_dir, tiny_models_dir, tmp_path, monkeypatch
):
    """Issue 27 part 2: the Ray batches go to the same operator and CSV rows sink as a local run's
    (tests/test_one_run_loop.py checks the app and the local CLI)."""
    from engine.run import Rows, operator

    calls, real = [], operator.run

    def spy(spec, source, sinks, cancel=None):
        calls.append([type(s) for s in sinks])
        return real(spec, source, sinks, cancel)

    monkeypatch.setattr(operator, "run", spy)
    common = ["classify", str(cells_dir), "--model", "tiny_a", "--models-dir", str(tiny_models_dir), "-q"]
    assert cli.main([*common, "--out", str(tmp_path / "r.csv"), *_ray_args()]) == 0
    assert len(calls) == 1 and Rows in calls[0]
    assert len(_read(tmp_path / "r.csv")) == 8


def test_killed_actor_is_replaced_and_its_batches_resent(cells_dir, tiny_models_dir, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    srcs = sorted(cells_dir.glob("*.bmp"))
    for i in range(48):
        os.link(srcs[i % len(srcs)], big / f"c{i:03d}.bmp")
    items = scan([big])
    reg = Registry([tiny_models_dir])
    expected = [r.p_all for r in classify(items, reg.load("tiny_a", device="cpu"))]
    payload = ModelPayload.from_registry(reg, "tiny_a")
    shutil.rmtree(tiny_models_dir)  # the actors (and the replacement) need no models folder
    got = []
    with ray_engine.ClassifierPool(payload, actors=2) as pool:
        first_pid = pool.infos[0].pid
        for res, _model in ray_engine.classify(items, pool, batch_size=2):
            got.append(res)
            if len(got) == 1:
                ray.kill(pool.actors[0])  # the window keeps two batches queued on each actor
        assert pool.restarts == [1, 0] and pool.infos[0].pid != first_pid
    assert [r.index for r in got] == list(range(len(items)))
    assert all(r.ok for r in got)
    assert max(abs(r.p_all - e) for r, e in zip(got, expected)) <= 1e-5


def test_a_model_the_actors_cannot_load_is_a_model_error(tiny_models_dir):
    good = ModelPayload.from_registry(Registry([tiny_models_dir]), "tiny_a")
    bad = ModelPayload(good.card, ((good.card, good.members[0][1] + b"tampered"),))
    with pytest.raises(ModelError, match="sha256 mismatch") as info:
        ray_engine.ClassifierPool(bad, actors=1)
    assert not isinstance(info.value, ray_engine.ClusterError)


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_stop_signal_writes_only_a_partial_report(cells_dir, tiny_models_dir, tmp_path, monkeypatch, capsys, sig, code):
    from engine.run import sinks

    real_row = sinks.cell_row
    done = []

    def row_then_signal(*a, **kw):  # the signal arrives mid-run, after the third row
        done.append(1)
        if len(done) == 3:
            os.kill(os.getpid(), sig)
        return real_row(*a, **kw)

    monkeypatch.setattr(sinks, "cell_row", row_then_signal)  # the operator's CSV rows sink, as a local run's
    before = signal.getsignal(sig)
    big = tmp_path / "big"
    big.mkdir()
    srcs = sorted(cells_dir.glob("*.bmp"))
    for i in range(40):
        os.link(srcs[i % len(srcs)], big / f"c{i:03d}.bmp")
    out = tmp_path / "r.csv"
    rc = cli.main(
        [
            "classify",
            str(big),
            "--model",
            "tiny_a",
            "--models-dir",
            str(tiny_models_dir),
            "--out",
            str(out),
            *_ray_args(),
        ]
    )
    err = capsys.readouterr().err
    assert rc == code, err
    assert not out.exists() and "interrupted after" in err and "Traceback" not in err
    rows = _read(tmp_path / "r.partial.csv")
    assert 0 < len(rows) < 40 and all(r["status"] == "ok" for r in rows)
    assert signal.getsignal(sig) == before  # the CLI's handler is gone again


def test_missing_ray_is_one_clear_line(cells_dir, tiny_models_dir, tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m.startswith("engine.distributed.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    rc = cli.main(
        [
            "classify",
            str(cells_dir),
            "--model",
            "tiny_a",
            "--models-dir",
            str(tiny_models_dir),
            "--out",
            str(tmp_path / "r.csv"),
            "--engine",
            "ray",
        ]
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2
    assert lines == ["leukoscan-cli: error: --engine ray needs the ray extra: pip install 'leukoscan[ray]'"]
    assert not (tmp_path / "r.csv").exists()


def test_ray_options_need_the_ray_engine(cells_dir, tiny_models_dir, tmp_path, capsys):
    rc = cli.main(
        [
            "classify",
            str(cells_dir),
            "--model",
            "tiny_a",
            "--models-dir",
            str(tiny_models_dir),
            "--out",
            str(tmp_path / "r.csv"),
            "--actors",
            "2",
        ]
    )
    assert rc == 2 and "need --engine ray" in capsys.readouterr().err


def test_the_cli_and_the_engine_do_not_load_ray():
    code = (
        "import sys, engine, engine.cli, engine.pipeline, engine.registry, engine.report;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray' or m.startswith('engine.distributed')))"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_only_engine_distributed_may_import_ray():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = [
        c
        for c in cfg["tool"]["importlinter"]["contracts"]
        if c.get("type") == "forbidden" and "ray" in c.get("forbidden_modules", [])
    ]
    assert contracts and contracts[0]["source_modules"] == ["engine"]
    assert contracts[0]["ignore_imports"] == ["engine.distributed.** -> ray"]
    assert "ray" in cfg["project"]["optional-dependencies"]
    rules = (REPO / "packaging" / "bundle_rules.py").read_text(encoding="utf-8")
    assert '"ray"' in rules and '"engine.distributed"' in rules
