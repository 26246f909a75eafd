"""The ``leukoscan-cli`` console entry point: imports the CLI (numpy, onnxruntime, Pillow ...) inside a guard, so
Ctrl-C during the first fraction of a second ends with one line and exit status 130, never a traceback."""

from __future__ import annotations

import importlib
import sys


def main(argv=None) -> int:
    try:
        cli = importlib.import_module("engine.cli")
    except KeyboardInterrupt:
        print("leukoscan-cli: interrupted", file=sys.stderr)
        return 130
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
