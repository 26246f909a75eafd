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
    assert {"e2e", "export"} <= set(commands)
    parser = cli.build_parser()
    for ln in lines:
        args = parser.parse_args(shlex.split(ln)[1:])  # a stale option exits 2 here
        assert args.cmd == shlex.split(ln)[1]
    assert "e2e" in parser.format_help()
