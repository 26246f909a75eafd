"""leukoscan-train: prepare the C-NMC data, cross-validate and fit recipes, evaluate, export and quantise models.

Commands: prepare | cv | probe-fit | e2e | frozen | evaluate | export | quantize | ensemble (training/registry.py).
`leukoscan-train COMMAND --help` says what a command does, its exit statuses and two examples; docs/training.md
is the training guide.  Messages go to stderr (and to RUN/train.log); defaults do not depend on the working
directory: the data and weights are found beside the repository (../shared), the caches go to the per-user cache
folder (e.g. ~/.cache/LeukoScan/training; LEUKOSCAN_CACHE_DIR moves it).

Typical use (the 4.0 models):

  leukoscan-train cv
  leukoscan-train probe-fit --recipe "vgg19 b2 gap+std cls" --run runs/vgg19_40
  leukoscan-train export    --run runs/vgg19_40 --name vgg19 --version 4.0.0 --recommended
  leukoscan-train quantize  --run runs/vgg19_40 --out /tmp/try --name vgg19
"""

from __future__ import annotations

import argparse
import logging
import sys

from .options import REPO_ROOT, UsageError, finish_defaults, repo_path
from .registry import BY_NAME, COMMANDS, Command

__all__ = ["REPO_ROOT", "build_parser", "main"]

EXIT_STATUSES = (
    "  0    done",
    "  1    the command failed (the traceback, and in a run folder RUN/train.log, say where)",
    "  2    usage error, a data problem or a missing file (one line on stderr)",
    "  130  Ctrl-C (train.log records where it stopped; --resume continues where the command has it)",
)


def _add_command(sub, c: Command) -> None:
    """One subcommand from its registry entry: its groups, its own options, and a --help that ends with the exit
    statuses and two examples."""
    p = sub.add_parser(
        c.name,
        help=c.help,
        description=c.help[:1].upper() + c.help[1:] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status:\n"
        + "\n".join(EXIT_STATUSES)
        + "\n\nexamples:\n"
        + "\n".join(f"  {e}" for e in c.examples),
    )
    for g in c.groups:
        g.add(p)
    for x in c.options:
        x.add(p)
    finish_defaults(p)
    p.set_defaults(cmd=c.name)


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    ap = argparse.ArgumentParser(
        prog="leukoscan-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for c in COMMANDS:
        _add_command(sub, c)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if extra:  # an unknown option is the command's error: its usage, not leukoscan-train's, is printed
        sub.choices[args.cmd].error(f"unrecognized arguments: {' '.join(extra)}")
    try:  # every option read and checked before any data is opened or run folder made
        job = BY_NAME[args.cmd].plan(args)
    except UsageError as exc:
        sub.choices[args.cmd].error(str(exc))
    from . import provenance, runlog
    from .data import DataError

    run = getattr(args, "run", None)
    runlog.setup(repo_path(run) if run else None, argv)
    provenance.set_command(sys.argv[1:] if argv is None else argv)
    file_only = {"extra": {"file_only": True}}  # the console already shows these (stderr, or the traceback)
    logger = logging.getLogger(runlog.LOGGER)
    try:
        return job()
    except DataError as exc:
        logger.error("data problem: %s", exc, **file_only)
        print(f"leukoscan-train: data problem: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        logger.error("%s", exc, **file_only)
        print(f"leukoscan-train: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # a refused option (its message is on the console)
        if exc.code not in (0, None):
            logger.error("%s", exc.code, **file_only)
        raise
    except BaseException as exc:  # a crash or Ctrl-C overnight: its traceback is in train.log too
        logger.error("stopped: %s", type(exc).__name__, exc_info=True, **file_only)
        raise
