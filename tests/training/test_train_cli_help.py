"""``leukoscan-train --version`` works and its "Typical use" help parses with today's options (issue 19 §1)."""

from __future__ import annotations

import shlex

import pytest

from engine import __version__
from training import cli


def test_version(capsys):
    with pytest.raises(SystemExit) as ex:
        cli.main(["--version"])
    assert ex.value.code == 0 and capsys.readouterr().out.strip() == f"leukoscan-train {__version__}"


def test_typical_use_lines_are_current_commands():
    lines = [ln.split("#")[0].strip() for ln in cli.__doc__.splitlines() if ln.strip().startswith("leukoscan-train ")]
    commands = [shlex.split(ln)[1] for ln in lines]
    assert {"cv", "probe-fit", "export"} <= set(commands)
    parser = cli.build_parser()
    for ln in lines:
        args = parser.parse_args(shlex.split(ln)[1:])  # a stale option exits 2 here
        assert args.cmd == shlex.split(ln)[1]
    assert "e2e" in parser.format_help()


def _subparsers():
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_command_says_what_it_does_its_exit_statuses_and_two_examples():
    """Issue 28 item 7: leukoscan-train like leukoscan-cli."""
    for name, parser in _subparsers().items():
        text = parser.format_help()
        assert parser.description and len(parser.description) > 10, name
        assert "exit status:" in text and "  2    usage error" in text, name
        examples = text.split("examples:\n", 1)[1].splitlines()
        assert len([e for e in examples if e.strip().startswith(f"leukoscan-train {name}")]) == 2, name
        for action in parser._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_path_defaults_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    from pathlib import Path

    def defaults():
        return {
            (name, a.dest): a.default
            for name, p in _subparsers().items()
            for a in p._actions
            if a.dest in ("data", "cache", "weights", "vgg_weights", "inception_weights", "out")
        }

    monkeypatch.setenv("LEUKOSCAN_CACHE_DIR", str(tmp_path / "user-cache"))
    here = defaults()
    monkeypatch.chdir(tmp_path)
    assert defaults() == here
    for (name, dest), value in here.items():
        if isinstance(value, str):
            assert Path(value).is_absolute(), (name, dest, value)
    assert here[("prepare", "cache")] == str(tmp_path / "user-cache" / "training")
    assert here[("prepare", "data")] == str(cli.REPO_ROOT.parent / "shared" / "data" / "C-NMC_Leukemia")


def test_messages_go_to_stderr(capsys):
    from training import runlog

    log = runlog.setup(None)
    log("a message")
    captured = capsys.readouterr()
    assert "a message" in captured.err and captured.out == ""


def test_an_unknown_option_prints_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as ex:
        cli.main(["export", "--run", "x", "--bogus"])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and "usage: leukoscan-train export" in err and "unrecognized arguments: --bogus" in err
