"""Progress of one epoch (or one pass over the cells) with its rate and ETA, whatever the shell redirects.

On a terminal (stderr is a TTY) a tqdm bar shows it live.  Otherwise (``nohup``, ``> run.out 2>&1``, CI) a bar
would write a frame per update into the file, so a plain line is logged at every ``every`` of the way
(default 10 %): ``epoch 3/8: 40% (1234/3085 steps), loss 0.4123, 7.9 img/s, 12 min left (ETA 14:05)``.  Those
lines always reach ``RUN/train.log`` (:mod:`training.runlog`), bar or not, so the file shows how a run went.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Self

from .runlog import LOGGER

log = logging.getLogger(LOGGER + ".progress")


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


class Progress:
    """``total`` steps, of which ``start`` were done before (a resumed epoch); ``per_step`` items (images) a step
    for the rate.  ``update(n, loss=...)`` after each step, ``close()`` at the end (also as a context manager)."""

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        start: int = 0,
        per_step: int = 1,
        unit: str = "steps",
        every: float = 0.1,
        stream=None,
        bar: bool | None = None,
    ) -> None:
        self.total, self.desc, self.unit, self.per_step = max(int(total), 0), desc, unit, per_step
        self.done = self.start = min(int(start), self.total)
        self.every = every
        self.t0 = time.monotonic()
        self.next_mark = self._mark_after(self.done)
        self.postfix: dict = {}
        stream = stream or sys.stderr
        if bar is None:
            bar = bool(getattr(stream, "isatty", lambda: False)())
        self.bar = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.done,
                desc=desc,
                unit=unit,
                file=stream,
                dynamic_ncols=True,
                mininterval=1.0,
                leave=False,
            )

    def _mark_after(self, done: int) -> int:
        if not self.total:
            return 1
        step = max(1, round(self.total * self.every))
        return (done // step + 1) * step

    def eta_s(self) -> float | None:
        """Seconds left at the rate of this session's steps (None before the first one)."""
        ran = self.done - self.start
        if ran <= 0:
            return None
        return (self.total - self.done) * (time.monotonic() - self.t0) / ran

    def line(self) -> str:
        pct = 100 * self.done / self.total if self.total else 100.0
        parts = [f"{self.desc}: {pct:.0f}% ({self.done}/{self.total} {self.unit})"]
        parts += [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.postfix.items()]
        elapsed = time.monotonic() - self.t0
        if self.done > self.start and elapsed > 0:
            parts.append(
                f"{(self.done - self.start) * self.per_step / elapsed:.1f} "
                f"{'img' if self.per_step > 1 else self.unit}/s"
            )
        eta = self.eta_s()
        if eta is not None and self.done < self.total:
            parts.append(f"{_duration(eta)} left (ETA {time.strftime('%H:%M', time.localtime(time.time() + eta))})")
        return ", ".join(parts)

    def update(self, n: int = 1, **postfix) -> None:
        self.done = min(self.done + n, self.total)
        self.postfix.update(postfix)
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(
                    {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in postfix.items()}, refresh=False
                )
        if self.done >= self.next_mark and self.done < self.total:
            self.next_mark = self._mark_after(self.done)
            log.info(self.line(), extra={"file_only": self.bar is not None})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
