"""Nothing leaves the workstation: onnxruntime's telemetry is switched off here, and only here.

Why: onnxruntime 1.32's wheels start Microsoft's 1DS telemetry when the library *loads*: ``import
onnxruntime`` alone creates ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}``
(queued events: OS, CPU, Python, model producer, run counts) and ``$TMPDIR/.ses``, and a few seconds
later its native code resolves ``mobile.events.data.microsoft.com`` (invisible to Python's audit hooks).
``onnxruntime.disable_telemetry_events()`` after the import does not undo any of that; the environment
variable ``ORT_DISABLE_TELEMETRY=1``, read when the library loads, prevents all of it.  Older builds
(Windows ETW) honour only the API call, so :func:`disable_telemetry` does both.

Where it runs: ``engine/__init__`` calls it, so every ``engine.*`` import (CLI, app, self-test, bundle
launcher) sets the variable before ``engine.model`` loads onnxruntime, and ``engine.model`` calls it
again once onnxruntime is loaded.  The GPU bundle's runtime hook, the one place that loads onnxruntime
before the app's code, imports ``engine`` first.  The variable is inherited by child processes.
"""

from __future__ import annotations

import os
import sys

ORT_TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"


def disable_telemetry() -> None:
    """Switch onnxruntime's telemetry off: the variable for its loader, and the API call once it is
    loaded.  Idempotent, never raises."""
    os.environ[ORT_TELEMETRY_ENV] = "1"
    ort = sys.modules.get("onnxruntime")
    if ort is not None:
        try:
            ort.disable_telemetry_events()
        except Exception:
            pass
