"""Verify a built LeukoScan bundle folder (``make bundle`` runs it after PyInstaller).

    python packaging/check_bundle.py [dist/LeukoScan] [--variant cpu|gpu] [--max-mb 350] [--json FILE] [--run-cli]

Checks, and exits 1 listing every failure:
- both executables exist (``LeukoScan``, and ``leukoscan-cli``: the headless CLI); build_info.json names the
  expected variant;
- every model card of resources/models is in the bundle with its ONNX file, byte-identical (sha256);
- the sample cells and their manifest are there; Qt platform plugins offscreen + xcb (Linux) are there;
- the frozen archive has what the app needs (engine.offline: onnxruntime telemetry off, the self-test,
  onnxruntime, Pillow, numpy);
- nothing forbidden (TensorFlow, Keras, tf2onnx, onnx, training code, tests, matplotlib, scikit-learn,
  QML/Quick, and in the CPU variant any CUDA library), neither as files nor as frozen Python modules;
- the total size is within --max-mb (CPU default 350 MB; GPU variants carry CUDA and are not limited).
- ``--run-cli`` (``make bundle``): one ``leukoscan-cli classify`` of the bundled sample cells through the bundle,
  in a fresh user folder: exit 0, its JSON summary, every cell classified as the manifest says; and
  ``LeukoScan cli --version`` reaches the same CLI.
Prints the size and the ten largest contributors.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bundle_rules import (
    FORBIDDEN_CPU_PATTERNS,
    FORBIDDEN_MODULE_PREFIXES,
    FORBIDDEN_PATH_PATTERNS,
)

MB = 1024 * 1024


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_files(bundle: Path) -> dict[str, int]:
    """Relative '/'-path -> size for every regular file (symlinks counted once, as links)."""
    out = {}
    for dirpath, _dirs, files in os.walk(bundle):
        for f in files:
            p = Path(dirpath) / f
            rel = p.relative_to(bundle).as_posix()
            out[rel] = 0 if p.is_symlink() else p.stat().st_size
    return out


def frozen_modules(exe: Path) -> list[str]:
    """Names of the Python modules in the executable's PYZ archive (needs PyInstaller importable)."""
    from PyInstaller.archive.readers import PKG_ITEM_PYZ, CArchiveReader

    carch = CArchiveReader(str(exe))
    names: list[str] = []
    for name, entry in carch.toc.items():
        if entry[-1] == PKG_ITEM_PYZ:
            names += list(carch.open_embedded_archive(name).toc)
    return names


def check(
    bundle: Path, variant: str, max_mb: float | None, models_src: Path, modules: list[str] | None = None
) -> tuple[list[str], dict]:
    """(problems, summary).  ``modules``: frozen module names (default: read from the executable)."""
    problems: list[str] = []
    exe_name = "LeukoScan.exe" if sys.platform == "win32" else "LeukoScan"
    exe = bundle / exe_name
    if not exe.is_file():
        return [f"executable {exe} missing"], {}
    if not (bundle / CLI_EXE).is_file():
        problems.append(f"executable {CLI_EXE} missing (the headless CLI)")
    files = bundle_files(bundle)
    internal = "_internal/" if any(k.startswith("_internal/") for k in files) else ""
    res = f"{internal}resources/"

    info_path = bundle / f"{res}build_info.json"
    info = {}
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("variant") != variant:
            problems.append(f"build_info.json says variant {info.get('variant')!r}, expected {variant!r}")
    else:
        problems.append("resources/build_info.json missing")

    cards = sorted(models_src.glob("*.json"))
    if not cards:
        problems.append(f"no model cards in {models_src}")
    for card in cards:
        data = json.loads(card.read_text(encoding="utf-8"))
        if f"{res}models/{card.name}" not in files:
            problems.append(f"model card {card.name} not bundled")
        onnx = data.get("onnx_file")
        if onnx:
            bp = bundle / f"{res}models/{onnx}"
            if not bp.is_file():
                problems.append(f"model file {onnx} not bundled")
            elif _sha256(bp) != str(data.get("sha256", "")).lower():
                problems.append(f"bundled {onnx} does not match the sha256 in {card.name}")

    if f"{res}samples/manifest.csv" not in files:
        problems.append("resources/samples/manifest.csv missing (self-test cells)")
    if f"{internal}docs/user_guide.md" not in files:
        problems.append("docs/user_guide.md missing (Help > User guide)")
    if sys.platform.startswith("linux"):
        for name in ("install-desktop.sh", "leukoscan.desktop.in", "leukoscan-mime.xml"):
            if name not in files:
                problems.append(f"{name} missing beside the executable (Linux menu entry for technicians)")
    plugin_dir = f"{internal}PySide6/Qt/plugins/platforms/"
    platforms = sorted(k[len(plugin_dir) :] for k in files if k.startswith(plugin_dir))
    wanted = {
        "linux": ["libqoffscreen.so", "libqxcb.so"],
        "win32": ["qwindows.dll", "qoffscreen.dll"],
        "darwin": ["libqcocoa.dylib", "libqoffscreen.dylib"],
    }
    for w in wanted.get(sys.platform if sys.platform != "linux2" else "linux", []):
        if w not in platforms:
            problems.append(f"Qt platform plugin {w} missing (have {platforms})")

    patterns = [re.compile(p) for p in FORBIDDEN_PATH_PATTERNS]
    if variant == "cpu":
        patterns += [re.compile(p) for p in FORBIDDEN_CPU_PATTERNS]
    bad_files = sorted({rel for rel in files for pat in patterns if pat.search(rel.lower())})
    if bad_files:
        shown = ", ".join(bad_files[:8]) + (f" (+{len(bad_files) - 8} more)" if len(bad_files) > 8 else "")
        problems.append(f"forbidden files in the bundle: {shown}")

    if modules is None:
        modules = frozen_modules(exe)
    bad_mods = sorted(
        m
        for m in modules
        if any(m == p.rstrip(".") or m.startswith(p if p.endswith(".") else p + ".") for p in FORBIDDEN_MODULE_PREFIXES)
    )
    if bad_mods:
        problems.append(f"forbidden Python modules frozen: {', '.join(bad_mods[:8])}")
    # engine.offline: switches onnxruntime's telemetry off before it loads (engine/__init__ imports it)
    for needed in (
        "engine.offline",
        "engine.selftest",
        "engine.preprocess",
        "engine.cli",
        "engine.cli.classify",
        "onnxruntime",
        "PIL.Image",
        "numpy",
    ):
        if needed not in modules:
            problems.append(f"module {needed} missing from the frozen archive")

    total = sum(files.values())
    groups: dict[str, int] = {}
    for rel, size in files.items():
        parts = rel.split("/")
        key = "/".join(parts[:3]) if parts[0] == "_internal" and len(parts) > 2 else "/".join(parts[:2])
        groups[key] = groups.get(key, 0) + size
    largest = sorted(groups.items(), key=lambda kv: -kv[1])[:10]
    if max_mb is not None and total > max_mb * MB:
        problems.append(f"bundle is {total / MB:.1f} MB, over the {max_mb:.0f} MB limit")
    summary = {
        "bundle": str(bundle),
        "variant": variant,
        "version": info.get("version"),
        "size_mb": round(total / MB, 1),
        "files": len(files),
        "frozen_modules": len(modules),
        "qt_platforms": platforms,
        "largest_mb": {k: round(v / MB, 1) for k, v in largest},
    }
    return problems, summary


CLI_EXE = "leukoscan-cli.exe" if sys.platform == "win32" else "leukoscan-cli"


def run_cli(bundle: Path, timeout: float = 600) -> list[str]:
    """Classify the bundled sample cells through the bundle's ``leukoscan-cli`` (a fresh user folder, the
    bundled models only); the problems found.  Also ``LeukoScan cli --version`` (not on Windows, where
    LeukoScan.exe has no console)."""
    exe = bundle / CLI_EXE
    if not exe.is_file():
        return [f"executable {CLI_EXE} missing (the headless CLI)"]
    internal = "_internal/" if (bundle / "_internal").is_dir() else ""
    samples = bundle / f"{internal}resources/samples"
    with open(samples / "manifest.csv", newline="", encoding="utf-8") as fh:
        expected = {r["file"]: r["expected_class"] for r in csv.DictReader(fh)}
    problems = []
    with tempfile.TemporaryDirectory(prefix="leukoscan-cli-check-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "LEUKOSCAN_RESOURCES_DIR"}
        env["LEUKOSCAN_DATA_DIR"] = tmp
        out = Path(tmp) / "samples.csv"
        cmd = [str(exe), "classify", str(samples), "--out", str(out), "--json", "-q", "--device", "cpu"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if p.returncode != 0:
            return [f"leukoscan-cli classify of the sample cells exited {p.returncode}: {p.stderr.strip()[-600:]}"]
        try:
            summary = json.loads(p.stdout)
        except ValueError:
            return [f"leukoscan-cli classify --json printed no JSON: {p.stdout[:200]!r}"]
        if summary.get("schema") != "leukoscan.classify/2":
            problems.append(f"leukoscan-cli classify --json: schema {summary.get('schema')!r}")
        with open(out, newline="", encoding="utf-8-sig") as fh:
            got = {r["file"]: r["final_label"] for r in csv.DictReader(fh)}
        if got != expected:
            wrong = sorted(
                f"{f}: {got.get(f, 'missing')} (expected {c})" for f, c in expected.items() if got.get(f) != c
            )
            problems.append(
                "leukoscan-cli classify of the sample cells: " + ("; ".join(wrong) or f"rows {sorted(got)}")
            )
        elif summary.get("counts", {}).get("classified") != len(expected):
            problems.append(f"leukoscan-cli classify --json counts {summary.get('counts')} for {len(expected)} cells")
        if sys.platform != "win32":
            p = subprocess.run(
                [str(bundle / "LeukoScan"), "cli", "--version"],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                check=False,
            )
            if p.returncode != 0 or not p.stdout.startswith("leukoscan-cli "):
                problems.append(f"LeukoScan cli --version: exit {p.returncode}, {(p.stdout + p.stderr).strip()[:300]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verify a built LeukoScan bundle.")
    ap.add_argument("bundle", nargs="?", type=Path, default=ROOT / "dist" / "LeukoScan")
    ap.add_argument("--variant", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--max-mb", type=float, default=None, help="size limit (default: 350 for cpu, none for gpu)")
    ap.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    ap.add_argument("--json", type=Path, help="write the summary as JSON")
    ap.add_argument(
        "--warn-size",
        action="store_true",
        help="report a size over --max-mb as a warning, not a failure (CI: a model change must not block "
        "every other change from landing; releases use the strict default)",
    )
    ap.add_argument(
        "--run-cli",
        action="store_true",
        help="also classify the bundled sample cells through the bundle's leukoscan-cli",
    )
    args = ap.parse_args(argv)
    max_mb = args.max_mb if args.max_mb is not None else (350.0 if args.variant == "cpu" else None)
    problems, summary = check(args.bundle, args.variant, max_mb, args.models)
    if args.run_cli and summary:
        cli_problems = run_cli(args.bundle)
        problems += cli_problems
        print("leukoscan-cli classify of the sample cells: " + ("FAILED" if cli_problems else "as expected"))
    if args.warn_size:
        for p in [p for p in problems if p.startswith("bundle is ") and "over the" in p]:
            problems.remove(p)
            print(f"WARNING: {p}: not releasable until it is back under the limit")
    if summary:
        print(
            f"bundle {summary['bundle']}: {summary['size_mb']} MB in {summary['files']} files, "
            f"{summary['frozen_modules']} frozen modules, variant {summary['variant']}, version {summary['version']}"
        )
        print("Qt platform plugins: " + ", ".join(summary["qt_platforms"]))
        print("largest parts (MB): " + ", ".join(f"{k} {v}" for k, v in summary["largest_mb"].items()))
    if args.json and summary:
        args.json.write_text(json.dumps({**summary, "problems": problems}, indent=2) + "\n", encoding="utf-8")
    if problems:
        print("BUNDLE CHECK FAILED:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("bundle check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
