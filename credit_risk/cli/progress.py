"""Progress of long commands: a bar on a terminal, plain periodic lines elsewhere (logs).

A command opens one with `progress("training", total, "candidates")` and hands its `update`
(done so far, total or None) or `advance` (n more done) to the work as a callback; the library
takes such a callback as an optional `Callable[[int, int | None], None]` and never imports
this module. On a terminal (stderr is a tty) the bar is tqdm's: count, rate and time left.
Elsewhere (Airflow's task logs, a file) it prints a plain line at the start, at most every
`every_s` seconds, and at the end. `-q` silences it (`set_verbosity`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

Callback = Callable[[int, "int | None"], None]  # (done so far, total or None when unknown)

_VERBOSITY = [0]  # the command line's -v count minus its -q count


def set_verbosity(level: int) -> None:
    """The command line's verbosity (-q: below 0, silent progress)."""
    _VERBOSITY[0] = level


def duration(seconds: float) -> str:
    """A duration in words a log reader scans quickly: `45 s`, `3 min 05 s`, `1 h 02 min`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _rate(per_s: float, unit: str) -> str:
    return f"{per_s:,.0f} {unit}/s" if per_s >= 10 else f"{per_s:.2g} {unit}/s"


class Progress:
    """Counts work done; `every_s` apart (and at the start and the end) says so on `stream`."""

    def __init__(self, what: str, total: int | None, unit: str, stream: IO[str],
                 every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.unit = what, total, unit
        self.stream, self.every_s, self.clock = stream, every_s, clock
        self.done = 0
        self._started: float | None = None
        self._said: float | None = None

    def __enter__(self) -> Progress:
        self._started = self._said = self.clock()
        self._line(self._head())
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(failed=kind is not None)

    def update(self, done: int, total: int | None = None) -> None:
        """`done` units so far (of `total`, when given: it may be learnt on the way)."""
        if total is not None:
            self.total = total
        self.done = done
        now = self.clock()
        if self._said is not None and now - self._said >= self.every_s:
            self._said = now
            self._line(self._status(now))

    def advance(self, n: int = 1) -> None:
        """`n` more units done."""
        self.update(self.done + n)

    def close(self, failed: bool = False) -> None:
        if self._started is None:
            return
        spent = self.clock() - self._started
        self._started = None
        rate = f", {_rate(self.done / spent, self.unit)}" if spent > 0 and self.done else ""
        end = "stopped at" if failed else "done:"
        self._line(f"{self.what}: {end} {self._count()} in {duration(spent)}{rate}")

    def _head(self) -> str:
        return f"{self.what}: {self._count()}"

    def _count(self) -> str:
        return f"{self.done:,}" + (f"/{self.total:,}" if self.total is not None else "") + \
            f" {self.unit}"

    def _status(self, now: float) -> str:
        assert self._started is not None
        spent = now - self._started
        text = self._head()
        if self.total:
            text += f" ({self.done / self.total:.0%})"
        if spent > 0 and self.done:
            per_s = self.done / spent
            text += f", {_rate(per_s, self.unit)}"
            if self.total is not None and self.total >= self.done:
                text += f", about {duration((self.total - self.done) / per_s)} left"
        return text

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class Bar(Progress):
    """The same counts as a tqdm bar on a terminal: count, rate, elapsed and time left."""

    def __enter__(self) -> Bar:
        from tqdm import tqdm  # only on a terminal: the plain lines need no import

        sized = _columns(self.stream) > 0  # a terminal that says no width (0): 80 columns
        self._bar: Any = tqdm(total=self.total, desc=self.what, unit=f" {self.unit}",
                              file=self.stream, dynamic_ncols=sized,
                              ncols=None if sized else 80, leave=True)
        self._started = self.clock()
        return self

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self._bar.total:
            self._bar.total = self.total = total
        self._bar.update(done - self.done)
        self.done = done

    def close(self, failed: bool = False) -> None:
        if self._started is not None:
            self._started = None
            self._bar.close()


class Silent(Progress):
    """Counts, says nothing (-q)."""

    def _line(self, text: str) -> None:
        pass


def progress(what: str, total: int | None = None, unit: str = "rows", *,
             stream: IO[str] | None = None, every_s: float = 10.0,
             clock: Callable[[], float] = time.monotonic) -> Progress:
    """A bar when `stream` (default stderr) is a terminal, else plain lines; silent with -q.
    Use as a context manager: `with progress(...) as p: work(progress=p.update)`."""
    out = sys.stderr if stream is None else stream
    kind: type[Progress] = Silent if _VERBOSITY[0] < 0 else \
        Bar if _isatty(out) else Progress
    return kind(what, total, unit, out, every_s, clock)


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
