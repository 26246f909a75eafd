"""leukoscan-train's RUN/train.log (dated lines, every start, errors) and the per-epoch progress with ETA: a bar on
a terminal, a plain line every 10 % when the output is redirected, and those lines in train.log either way."""

from __future__ import annotations

import io
import logging
import re

import pytest

from training import progress, runlog

DATED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} (INFO|ERROR) ")


@pytest.fixture(autouse=True)
def _no_handlers_left():
    yield
    logger = logging.getLogger(runlog.LOGGER)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_redirected_output_gets_a_line_every_ten_percent_with_eta_and_the_file_gets_them_dated(tmp_path):
    console = io.StringIO()  # what `> run.out` sees
    log = runlog.setup(tmp_path, ["e2e", "--run", str(tmp_path)], stream=console)
    log("epoch 1/2: starting")
    with progress.Progress(200, "epoch 1/2", per_step=16, stream=console) as p:
        for _ in range(200):
            p.update(1, loss=0.5)
    lines = [s for s in console.getvalue().splitlines() if "epoch 1/2: " in s and "%" in s]
    assert len(lines) == 9, console.getvalue()  # 10 % ... 90 %; the epoch's own summary line says 100 %
    assert "\r" not in console.getvalue()  # no bar frames in a file
    assert lines[0].split("] ", 1)[1].startswith("epoch 1/2: 10% (20/200 steps), loss 0.5000, ")
    assert all(re.search(r"img/s, .* left \(ETA \d\d:\d\d\)$", s) for s in lines)
    text = runlog.log_file(tmp_path).read_text(encoding="utf-8").splitlines()
    assert text[0].endswith("---- leukoscan-train e2e --run " + str(tmp_path))
    assert all(DATED.match(s) for s in text), text
    assert sum("% (" in s for s in text) == 9 and any(s.endswith("epoch 1/2: starting") for s in text)


def test_a_terminal_gets_a_bar_and_no_progress_lines_but_the_file_still_does(tmp_path):
    console, tty = io.StringIO(), _Tty()
    runlog.setup(tmp_path, ["e2e"], stream=console)
    with progress.Progress(50, "epoch 2/5", start=10, stream=tty) as p:  # a resumed epoch: 10 steps done before
        for _ in range(40):
            p.update(1, loss=0.25)
        assert p.bar is not None and p.bar.n == 50
    assert "\repoch 2/5:" in tty.getvalue()  # tqdm's bar went to the terminal (and was cleared at the end)
    assert "%" not in console.getvalue()
    logged = [s for s in runlog.log_file(tmp_path).read_text(encoding="utf-8").splitlines() if "epoch 2/5" in s]
    assert [s.split("epoch 2/5: ")[1].split(" (")[0] for s in logged] == [
        "30%",
        "40%",
        "50%",
        "60%",
        "70%",
        "80%",
        "90%",
    ]


def test_train_log_appends_each_start_and_records_why_a_command_failed(tmp_path, capsys):
    from training.cli import main

    run = tmp_path / "run"
    for _ in range(2):
        assert main(["evaluate", "--run", str(run)]) == 2  # no metrics.json: exit 2, the reason on stderr
    assert "leukoscan-train:" in capsys.readouterr().err
    text = (run / "train.log").read_text(encoding="utf-8").splitlines()
    assert sum("---- leukoscan-train evaluate --run" in s for s in text) == 2
    errors = [s for s in text if " ERROR " in s]
    assert len(errors) == 2 and all(DATED.match(s) and "metrics.json" in s for s in errors)
