"""What the LeukoScan bundle may and may not contain.  Used by build.spec (to build) and by
packaging/check_bundle.py and tests/packaging (to verify), so the two can never disagree."""

from __future__ import annotations

import re

#: Python packages never frozen into the bundle (training stack, dev tools, other Qt bindings ...).
EXCLUDED_MODULES = [
    "tensorflow",
    "tensorboard",
    "tensorflow_estimator",
    "keras",
    "tf2onnx",
    "onnx",
    "onnxconverter_common",
    "training",
    "tests",
    "benchmarks",
    "matplotlib",
    "sklearn",
    "scipy",
    "pandas",
    "joblib",
    "h5py",
    "ml_dtypes",
    "optree",
    "grpc",
    "absl",
    "torch",
    "torchvision",
    "jax",
    "jaxlib",
    "cv2",
    "ray",
    "engine.distributed",
    "pyarrow",  # the optional cluster engine (leukoscan[ray]): never in the app
    "PIL.AvifImagePlugin",
    "PIL._avif",  # AVIF: not a microscopy format, 5 MB of libavif
    "IPython",
    "jupyter",
    "notebook",
    "pytest",
    "_pytest",
    "pytestqt",
    "importlinter",
    "grimp",
    "tkinter",
    "_tkinter",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PyInstaller",
    "setuptools",
    "pkg_resources",
    "pip",
    "wheel",
]

#: PySide6 modules the app does not use (it needs QtCore, QtGui, QtWidgets and, if present, QtSvg).
QT_EXCLUDED_MODULES = [
    f"PySide6.{m}"
    for m in (
        "QtNetwork",
        "QtQml",
        "QtQuick",
        "QtQuickControls2",
        "QtQuickWidgets",
        "QtQuickTest",
        "QtQmlFeatures",
        "QtOpenGL",
        "QtOpenGLWidgets",
        "QtSql",
        "QtTest",
        "QtXml",
        "QtUiTools",
        "QtDesigner",
        "QtHelp",
        "QtConcurrent",
        "QtDBus",
        "QtLabsStyleKit",
        "QtPdf",
        "QtPdfWidgets",
        "QtWebEngineCore",
        "QtWebEngineWidgets",
        "QtMultimedia",
        "QtMultimediaWidgets",
        "Qt3DCore",
        "QtCharts",
        "QtDataVisualization",
        "QtPrintSupport",
    )
]

#: Qt platform plugins kept: headless (offscreen, minimal), X11 (xcb), Wayland, Windows, macOS.
QT_PLATFORMS_KEPT = ("offscreen", "minimal", "xcb", "wayland", "wayland-egl", "windows", "cocoa")
#: Qt plugin folders kept whole.
QT_PLUGIN_DIRS_KEPT = (
    "platforms",
    "imageformats",
    "iconengines",
    "platformthemes",
    "platforminputcontexts",
    "xcbglintegrations",
    "wayland-decoration-client",
    "wayland-graphics-integration-client",
    "wayland-shell-integration",
    "styles",
)

_PLUGIN_RE = re.compile(r"(?:^|/)PySide6/Qt/plugins/([^/]+)/([^/]+)$")
_PLATFORM_RE = re.compile(r"^(?:lib)?q([a-z0-9-]+)\.(?:so|dll|dylib)$")


def keep_qt_file(dest: str) -> bool:
    """Filter for the Analysis TOC: False for Qt plugins/translations the app does not need."""
    d = dest.replace("\\", "/")
    if "PySide6/Qt/translations/" in d:
        return False  # English-only UI: Qt's own translations (qtbase_*.qm) are not needed
    m = _PLUGIN_RE.search(d)
    if not m:
        return True
    folder, name = m.groups()
    if folder not in QT_PLUGIN_DIRS_KEPT:
        return False
    if folder == "platformthemes" and "gtk" in name:
        return False  # links the system's GTK 3: pulls half of GTK into the bundle, and mixes two glibs
    if folder == "platforms":
        pm = _PLATFORM_RE.match(name)
        return bool(pm) and pm.group(1) in QT_PLATFORMS_KEPT
    return True


def prunable(dest: str) -> bool:
    """Shared libraries that are only in the bundle because something else needs them (Linux)."""
    d = dest.replace("\\", "/")
    return "/" not in d or d.startswith("PySide6/Qt/lib/")


def prune_unreferenced(toc, needed_of, keep_prefixes=("libpython",)):
    """Drop prunable libraries that no kept binary needs any more (after keep_qt_file removed plugins).

    ``toc``: PyInstaller TOC entries ``(dest, src, typecode)``; ``needed_of(src)``: library names that
    binary needs.  PyInstaller's Qt hook collects some Qt libraries by module (QtNetwork, EGLFS) and the
    dependencies of every plugin; once unused plugins are filtered out, their dependency trees go too.
    """
    import os

    kept = [e for e in toc if not (prunable(e[0]) and e[2] == "BINARY")]
    candidates = {os.path.basename(e[0]): e for e in toc if prunable(e[0]) and e[2] == "BINARY"}
    needed: set[str] = set()
    queue = [e[1] for e in kept]
    seen: set[str] = set()
    while queue:
        src = queue.pop()
        if src in seen:
            continue
        seen.add(src)
        for name in needed_of(src):
            base = os.path.basename(name)
            if base not in needed:
                needed.add(base)
                if base in candidates:
                    queue.append(candidates[base][1])
    out = list(kept)
    dropped = []
    for base, e in candidates.items():
        if base in needed or base.startswith(tuple(keep_prefixes)):
            out.append(e)
        else:
            dropped.append(e[0])
    return out, sorted(dropped)


#: Paths (relative to the bundle folder, '/'-separated, lower-case) that must not appear in a bundle.
FORBIDDEN_PATH_PATTERNS = [
    r"(^|/)tensorflow",
    r"(^|/)keras",
    r"(^|/)tf2onnx",
    r"(^|/)onnx/",
    r"(^|/)training/",
    r"(^|/)tests/",
    r"(^|/)matplotlib",
    r"(^|/)sklearn",
    r"(^|/)scipy",
    r"libtensorflow",
    r"(^|/)torch/",
    r"pyside6/qt/qml/",
    r"qt6quick",
    r"qt6qml",
    r"qt6webengine",
    r"qt6designer",
]
#: Module-name prefixes that must not appear in the frozen Python archive (PYZ).
FORBIDDEN_MODULE_PREFIXES = [
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx.",
    "training",
    "tests",
    "matplotlib",
    "sklearn",
    "scipy",
    "torch",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "pytest",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtNetwork",
]
#: Extra path patterns forbidden in the CPU variant (a CUDA provider would mean the GPU onnxruntime leaked in).
FORBIDDEN_CPU_PATTERNS = [r"providers_cuda", r"providers_tensorrt", r"(^|/)nvidia/", r"libcudnn", r"libcublas"]
