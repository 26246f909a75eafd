"""``leukoscan-cli classify --engine ray``: the cells are read and scored by Ray tasks and actors
(:mod:`engine.distributed`, imported only here), whose batches the classification operator (:mod:`engine.run`)
hands to the same sinks as a local run; the rows, the reports and the exit statuses are the local engine's
(:func:`.run_end.write_reports`)."""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path

from ..card import ModelError
from ..case.rules import threshold_in_use
from ..run import Progress, Rows, RunSpec, on_ray, operator
from .common import EXIT_MODEL, CliError, registry, say, warn
from .run_end import Finished, Outputs, model_name, progress_bar, progress_wanted, stop_signals, write_reports

RAY_MISSING = "--engine ray needs the ray extra: pip install 'leukoscan[ray]'"


def classify_on_ray(args, items, out: Path, summary: Path | None) -> int:
    try:
        ray_engine = importlib.import_module("engine.distributed.ray_engine")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "ray":
            raise
        raise CliError(RAY_MISSING) from None
    from ..distributed.payload import ModelPayload

    if args.device == "cuda" and not args.gpus_per_actor:
        raise CliError("--engine ray: --device cuda needs --gpus-per-actor G (the GPUs each actor reserves)")
    reg = registry(args.models_dir)
    try:
        payload = ModelPayload.from_registry(reg, model_name(reg, args), args.precision)
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    card = payload.card
    threshold = threshold_in_use(card.threshold, args.threshold)
    cancel = threading.Event()
    stopped_by: list[int] = []
    spec = RunSpec.of(items, threshold, args.batch_size)
    rows = Rows(spec)
    facts = {
        "engine": "ray",
        "model": {"name": card.name, "version": card.version, "precision": payload.precision},
        "threshold": threshold,
        "default_threshold": card.threshold,
        "device": None,
        "device_requested": args.device,
        "device_fallback": None,  # each actor reports its own provider in the report's provider column
        "provider": None,
    }
    t0, elapsed = time.perf_counter(), None
    try:
        with ray_engine.connect(args.address):  # before the signal handlers: ray.init sets its own SIGTERM one
            n = args.actors or ray_engine.default_actors(args.gpus_per_actor or 0.0, args.threads)
            n = max(1, min(n, -(-len(items) // args.batch_size)))  # no actor without a batch
            with ray_engine.ClassifierPool(payload, n, args.gpus_per_actor or 0.0, args.threads) as pool:
                facts.update(device=pool.device_label, provider=pool.active_provider)
                say(
                    f"model {card.name} {card.version} on Ray ({args.address or 'local instance'}): {n} actor(s) "
                    f"on {pool.device_label} ({pool.active_provider}); threshold {threshold:g}"
                    f"{'' if args.threshold is None else f' (card: {card.threshold:g})'}; {len(items)} image files"
                )
                for w in pool.warnings:
                    warn(w)
                t0 = time.perf_counter()
                with stop_signals(cancel, stopped_by), progress_bar(len(items), progress_wanted(args)) as bar:
                    operator.run(spec, on_ray(pool), [rows, Progress(bar.update)], cancel)
                elapsed = time.perf_counter() - t0  # not the shutdown of a local Ray instance
    except ModelError as exc:
        raise CliError(str(exc), EXIT_MODEL) from None
    except KeyboardInterrupt:
        cancel.set()
    except ConnectionError as exc:
        what = f"connect to the Ray cluster at {args.address}" if args.address else "start a local Ray instance"
        raise CliError(f"cannot {what}: {exc}") from None
    elapsed = time.perf_counter() - t0 if elapsed is None else elapsed
    sample_ids = {str(items[0].root): " ".join(args.sample_id.split())} if getattr(args, "sample_id", None) else None
    done = Finished(rows.rows, len(items), cancel.is_set(), tuple(stopped_by), elapsed, facts, sample_ids=sample_ids)
    return write_reports(Outputs.of(args, out, summary), done)
