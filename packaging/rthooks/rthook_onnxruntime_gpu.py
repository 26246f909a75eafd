"""PyInstaller runtime hook of the GPU bundle (LEUKOSCAN_VARIANT=gpu): make onnxruntime-gpu's CUDA
provider loadable inside the frozen app.

Why: ``libonnxruntime_providers_cuda`` (``onnxruntime_providers_cuda.dll``) is dlopen'ed by onnxruntime
at session creation and needs cudart, cuBLAS(Lt), cuFFT, cuRAND, nvrtc and cuDNN.  In a frozen app
those are neither on the loader's search path nor found by onnxruntime's own site-packages logic, and
onnxruntime then silently falls back to CPU ("CUDA provider not available").  This hook

1. puts ``onnxruntime/capi`` and every bundled ``nvidia/<pkg>/lib`` (Linux) or ``nvidia/<pkg>/bin``
   (Windows) folder on the search path (``os.add_dll_directory`` + PATH on Windows;
   LD_LIBRARY_PATH on Linux, which only helps child processes: the running loader ignores changes);
2. preloads the CUDA/cuDNN libraries by full path with ``onnxruntime.preload_dlls()`` (onnxruntime
   >= 1.21), which looks in ``<bundle>/nvidia/...`` first and then in the workstation's default
   search path (a system CUDA 12/cuDNN 9 install), so both bundled and system CUDA work;
3. records what happened in the environment variable LEUKOSCAN_GPU_PRELOAD (shown by
   ``LeukoScan --self-test``); the engine itself tells the user in plain words when the CUDA provider
   still cannot start (Classifier.warnings), and falls back to CPU.

This hook runs before the app's code, so it imports ``engine`` before onnxruntime: onnxruntime's
telemetry must be off when its library loads.

Nothing here raises: a workstation without an NVIDIA GPU must still start the app on CPU.
"""


def _leukoscan_gpu_setup():
    import contextlib
    import glob
    import io
    import os
    import sys

    base = getattr(sys, "_MEIPASS", None)
    if not base:
        return
    win = sys.platform == "win32"
    sub = "bin" if win else "lib"
    dirs = [os.path.join(base, "onnxruntime", "capi")]
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", sub)))
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", sub, "*")))  # CUDA 13 Windows: bin/x86_64
    dirs = [d for d in dirs if os.path.isdir(d)]
    env_var = "PATH" if win else "LD_LIBRARY_PATH"
    old = os.environ.get(env_var, "")
    os.environ[env_var] = os.pathsep.join(dirs + ([old] if old else []))
    if win:
        for d in dirs:
            try:
                os.add_dll_directory(d)
            except OSError:
                pass

    report = [f"{len(dirs) - 1} bundled CUDA library folder(s)"]
    try:
        # isort: off
        import engine  # noqa: F401 - first: it switches onnxruntime's telemetry off (engine/offline.py)
        import onnxruntime

        # isort: on

        if hasattr(onnxruntime, "preload_dlls"):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                # "" = bundle's nvidia/ folders first, then the system search path (never a torch install).
                onnxruntime.preload_dlls(cuda=True, cudnn=True, msvc=True, directory="")
            failed = [
                ln.strip()
                for ln in buf.getvalue().splitlines()
                if ln.strip().startswith("Failed to load") or "Redistributable is not installed" in ln
            ]
            report.append("preload_dlls: " + ("; ".join(failed) if failed else "no load failure reported"))
        else:
            report.append(f"onnxruntime {onnxruntime.__version__} has no preload_dlls(); relying on search path")
    except Exception as exc:  # never block start-up
        report.append(f"preload error: {exc!r}")
    os.environ["LEUKOSCAN_GPU_PRELOAD"] = ", ".join(report)


_leukoscan_gpu_setup()
del _leukoscan_gpu_setup
