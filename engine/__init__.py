"""LeukoScan inference core: model cards, preprocessing, batched ONNX inference, reports, CLI.

This package must never import Qt (PySide6) or TensorFlow/Keras: it is shared by the desktop app,
the headless CLI, the training pipeline and the packaged bundle. An import-linter contract in the
tests enforces it.

Importing it first switches onnxruntime's telemetry off (:mod:`engine.offline`), before any engine
module loads onnxruntime.
"""

from .offline import disable_telemetry

disable_telemetry()

__version__ = "0.1.0"
