"""The classification operator: one way to run a classification, whoever asks (the app, ``leukoscan-cli classify``
on this machine or on Ray), as ilastik runs one operator headless and in its GUI.

- :class:`RunSpec` (:mod:`.spec`): what is classified, resolved once by the front end (the items, the threshold in
  use, the batch size, the decoding threads); no argparse Namespace and no widget below it.
- a batch source: :func:`local` (:func:`engine.pipeline.classify_batches` with a loaded model) or :func:`on_ray`
  (the Ray driver's :func:`engine.distributed.ray_engine.classify_batches` on a pool of actors); each yields a
  batch's results and the model that scored them.
- :class:`Sink` (:mod:`.sinks`): what consumes the batches: :class:`Rows` (the CSV report's rows),
  :class:`Store` (a headless run into a case file), the app's chunks to the GUI thread (``gui.service``), the
  CLI's progress bar (:class:`Progress`).
- :func:`run` (:mod:`.operator`) drives a source into the sinks and tells each, at the end, whether the run
  completed: the one loop over the pipeline's results.
"""

from . import operator
from .operator import RunOutcome, Sink, Source, local, on_ray, run
from .sinks import Progress, Rows, Store
from .spec import ResultBatch, RunSpec

__all__ = [
    "Progress",
    "ResultBatch",
    "Rows",
    "RunOutcome",
    "RunSpec",
    "Sink",
    "Source",
    "Store",
    "local",
    "on_ray",
    "operator",
    "run",
]
