"""leukoscan-train's command table (issue 27 part 5): --help lists only commands that run, shared options are
declared once, every declared option is read by its command, and a combination that would ignore one is refused."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from training import cli, options, registry

TRAINING = Path(__file__).resolve().parents[2] / "training"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_help_lists_exactly_the_registry_and_no_removed_command(capsys):
    with pytest.raises(SystemExit) as ex:
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert ex.value.code == 0
    listed = re.findall(r"^    (\S+)", text.split("positional arguments:")[1], re.M)
    assert listed == [c.name for c in registry.COMMANDS]
    for gone in ("train", "finetune"):  # 1.x and InceptionV3 2.0: in git history (docs/models.md)
        assert gone not in listed
        with pytest.raises(SystemExit) as ex:
            cli.main([gone, "--help"])
        assert ex.value.code == 2
    capsys.readouterr()


def test_every_listed_command_has_a_plan_that_accepts_its_own_examples():
    """What --help lists runs: each example parses and is planned (options read and checked) without error."""
    parser = cli.build_parser()
    for c in registry.COMMANDS:
        for example in c.examples:
            args = parser.parse_args(shlex.split(example)[1:])
            assert args.cmd == c.name
            assert callable(c.plan(args)), example


class _Recording(argparse.Namespace):
    """A Namespace that remembers which options were read."""

    def __init__(self, ns: argparse.Namespace):
        super().__init__(**vars(ns))
        object.__setattr__(self, "_read", set())

    def __getattribute__(self, name: str):
        if not name.startswith("_"):
            object.__getattribute__(self, "_read").add(name)
        return object.__getattribute__(self, name)


@pytest.mark.parametrize("command", registry.COMMANDS, ids=lambda c: c.name)
def test_every_declared_option_is_read_by_its_plan(command):
    """Old code: ``e2e --folds`` and ``cv --folds/--seed`` were accepted and never read."""
    parser = _subparsers()[command.name]
    declared = {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}
    assert declared == command.dests
    for example in command.examples:
        args = _Recording(parser.parse_args(shlex.split(example)[2:]))
        command.plan(args)
        unread = declared - object.__getattribute__(args, "_read")
        assert not unread, f"{example}: declared but never read: {sorted(unread)}"


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["cv", "--fold", "2"], "--fold cannot be combined with without --recipe"),
        (["cv", "--recipe", "vgg19 b2 gap+std cls", "--only", "x"], "--only cannot be combined with --recipe"),
        (["e2e", "--run", "r", "--all-subjects", "--holdout", "H6"], "--holdout cannot be combined"),
        (["prepare", "--crop", "0.8"], "--crop needs --size"),
        (["e2e", "--run", "r", "--tta-views", "5,0"], "views must be distinct integers 0-7 starting with 0"),
        (["cv", "--recipe", "no such recipe"], "unknown recipe"),
    ],
)
def test_an_option_the_command_would_ignore_or_cannot_use_is_a_usage_error(argv, why, capsys):
    with pytest.raises(SystemExit) as ex:
        cli.main(argv)
    err = capsys.readouterr().err
    assert ex.value.code == 2 and f"usage: leukoscan-train {argv[0]}" in err and why in err


def test_shared_options_are_declared_once_in_their_group():
    """Old code: --weights was declared four times, the data options once per command by a helper and --cache's
    default patched afterwards."""
    groups = [g for g in vars(options).values() if isinstance(g, options.Group)]
    shared = {flag for g in groups for x in g.options for flag in x.flags}
    assert {"--weights", "--data", "--cache", "--folds-file", "--run", "--vgg-weights", "--seed"} <= shared
    # the modules of leukoscan-train (python -m training.donor_charts has its own --out); --out of cv is its table
    # folder, not a model folder, and leukoscan-train --version is the program's
    source = "\n".join((TRAINING / f).read_text(encoding="utf-8") for f in ("cli.py", "options.py", "registry.py"))
    source += "\n".join((TRAINING / f).read_text(encoding="utf-8") for f in ("recipes.py", "tools.py"))
    for flag in shared - {"--out", "--version"}:
        assert len(re.findall(rf'"{flag}"', source)) == 1, flag
    for c in registry.COMMANDS:  # a command declares no shared flag itself (cv's --out: its table folder)
        own = {flag for x in c.options for flag in x.flags}
        assert not own & (shared - {"--out"}), (c.name, own & shared)


def test_the_run_folder_commands_share_one_run_option_and_weights_one_weights_option():
    takes_run = sorted(c.name for c in registry.COMMANDS if options.RUN in c.groups)
    assert takes_run == ["e2e", "evaluate", "export", "frozen", "probe-fit", "quantize"]
    assert sorted(c.name for c in registry.COMMANDS if options.WEIGHTS in c.groups) == ["e2e", "frozen"]
    assert sorted(c.name for c in registry.COMMANDS if options.BACKBONE_WEIGHTS in c.groups) == ["cv", "probe-fit"]


def test_a_relative_cache_is_the_working_directorys(tmp_path, monkeypatch):
    """A relative --cache wrote into the source tree (the repository-root fallback of input paths)."""
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["prepare", "--cache", "mycache"])
    assert options.DATA.read(args).cache == tmp_path / "mycache"


def test_every_training_module_imports():
    """What the jobs import exists: no module still imports one that went to git history (training.inception,
    training.features, ...)."""
    import importlib

    for p in sorted(TRAINING.glob("*.py")):
        if p.stem != "__main__":
            importlib.import_module(f"training.{p.stem}")
