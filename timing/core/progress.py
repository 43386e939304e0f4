"""Progress of long work: news lines and counted tasks, shown as bars, as log lines, or not at all.

Library code reports through the *current* :class:`Progress` (a context
variable, silent unless a caller installs one with :func:`reporting`)::

    from timing.core import progress

    with progress.current().task("features at training origins", total=60) as t:
        for origin in origins:
            ...
            t.advance()

The command line installs one of:

* :class:`RichProgress` on a terminal: a bar per running task with counts,
  elapsed time and an estimate of the time left, redrawn several times a
  second (the spinner and the elapsed time move even when a step has no count);
* :class:`LineProgress` when stderr is not a terminal (a log, CI): a line per
  piece of news, a task's count at most every few seconds, and a line saying
  what is still running whenever nothing was printed for ``heartbeat`` seconds;
* nothing at all with ``--quiet``.

Functions that take a ``progress=`` argument accept a :class:`Progress` or a
plain ``callable(message)`` (wrapped by :func:`as_progress`).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any


class Task:
    """A counted piece of work in progress. This base class counts for no one."""

    def __init__(self, description: str, total: float | None = None) -> None:
        self.description = description
        self.total = total
        self.completed = 0.0
        self.started = time.monotonic()

    def advance(self, n: float = 1) -> None:
        self.update(completed=self.completed + n)

    def update(self, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        if completed is not None:
            self.completed = float(completed)
        if total is not None:
            self.total = float(total)
        if description is not None:
            self.description = description
        self._changed()

    def _changed(self) -> None:
        """Called after every update."""

    def finish(self) -> None:
        """The work is done (a task stopped early, like an early-stopped fit, ends here)."""


class Progress:
    """Where long work reports. This base class reports to no one."""

    def say(self, message: str) -> None:
        """One line of news."""

    def __call__(self, message: str) -> None:  # a Progress can stand where a callback did
        self.say(message)

    def _start(self, description: str, total: float | None) -> Task:
        return Task(description, total)

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Task]:
        """A counted task for the block's duration (``total`` None: a count without an end)."""
        t = self._start(description, total)
        try:
            yield t
        finally:
            t.finish()


class CallbackProgress(Progress):
    """News to ``callback(message)``; each task is announced once when it starts."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        self.callback = callback

    def say(self, message: str) -> None:
        self.callback(message)

    def _start(self, description: str, total: float | None) -> Task:
        self.callback(description)
        return Task(description, total)


def _eta(task: Task) -> str:
    if not task.total or task.completed <= 0:
        return ""
    elapsed = time.monotonic() - task.started
    left = elapsed * (task.total - task.completed) / task.completed
    return f", about {_clock(left)} left"


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def _count(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.1f}"


class _LineTask(Task):
    def __init__(self, owner: LineProgress, description: str, total: float | None) -> None:
        super().__init__(description, total)
        self.owner = owner
        self.last = time.monotonic()

    def line(self) -> str:
        if self.total:
            return (f"{self.description}: {_count(self.completed)}/{_count(self.total)} "
                    f"({100 * self.completed / self.total:.0f}%{_eta(self)})")
        if self.completed:
            return f"{self.description}: {_count(self.completed)}"
        return f"{self.description} ({_clock(time.monotonic() - self.started)} so far)"

    def _changed(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.owner.interval:
            self.last = now
            self.owner._write(self.line())

    def finish(self) -> None:
        self.owner._finished(self)


class LineProgress(Progress):
    """Plain lines on ``stream`` (a log): news as it comes, a task's count at most every ``interval``
    seconds, and what is still running (the latest task, else the latest news) after ``heartbeat``
    seconds of silence."""

    def __init__(self, stream: IO[str] | None = None, interval: float = 5.0, heartbeat: float = 8.0,
                 prefix: str = "  .. ") -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.heartbeat = heartbeat
        self.prefix = prefix
        self._lock = threading.Lock()
        self._tasks: list[_LineTask] = []
        self._last = time.monotonic()
        self._news: tuple[str, float] | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _write(self, line: str) -> None:
        with self._lock:
            self.stream.write(f"{self.prefix}{line}\n")
            self.stream.flush()
            self._last = time.monotonic()
            if self._beat is None:
                self._beat = threading.Thread(target=self._beating, name="timing-progress", daemon=True)
                self._beat.start()

    def say(self, message: str) -> None:
        self._write(message)
        self._news = (message, time.monotonic())

    def _start(self, description: str, total: float | None) -> Task:
        t = _LineTask(self, description, total)
        self._write(description + (f" (0/{_count(total)})" if total else ""))
        with self._lock:
            self._tasks.append(t)
        return t

    def _finished(self, t: _LineTask) -> None:
        with self._lock:
            if t in self._tasks:
                self._tasks.remove(t)
        self._write(f"{t.description}: done in {_clock(time.monotonic() - t.started)}")

    def _beating(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat / 4)):
            with self._lock:
                quiet = time.monotonic() - self._last >= self.heartbeat
                running = self._tasks[-1] if self._tasks else None
                news = self._news
            if not quiet:
                continue
            if running is not None:
                running.last = time.monotonic()
                self._write(running.line())
            elif news is not None:
                self._write(f"{news[0]} (still at it: {_clock(time.monotonic() - news[1])})")

    def close(self) -> None:
        self._stop.set()


def _plain(text: str) -> str:
    """``text`` shown as it is by rich's description column (which reads markup)."""
    from rich.markup import escape

    return escape(text)


class _RichTask(Task):
    def __init__(self, owner: RichProgress, description: str, total: float | None) -> None:
        super().__init__(description, total)
        self.owner = owner
        self.id = owner.bars.add_task(_plain(description), total=total)

    def _changed(self) -> None:
        self.owner.bars.update(self.id, completed=self.completed, total=self.total,
                               description=_plain(self.description))

    def finish(self) -> None:
        self.owner._finished(self)


class RichProgress(Progress):
    """Bars on a terminal (rich): one per running task, with counts, elapsed time and time left."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as Bars,
        )

        self.console = console or Console(stderr=True)
        self.bars = Bars(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                         console=self.console, transient=False, refresh_per_second=4)
        self._started = False
        self._status: Any = None
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        with self._lock:
            if not self._started:
                self.bars.start()
                self._started = True

    def _print(self, message: str) -> None:
        from rich.text import Text

        self.bars.console.print(Text.assemble((".. ", "dim"), message), soft_wrap=True)

    def say(self, message: str) -> None:
        """A line above the bars, and a spinner with the time since it below them until the next news."""
        self._ensure()
        self._print(message)
        with self._lock:
            if self._status is not None:
                self.bars.remove_task(self._status)
            self._status = self.bars.add_task(_plain(message), total=None)

    def _start(self, description: str, total: float | None) -> Task:
        self._ensure()
        return _RichTask(self, description, total)

    def _finished(self, t: _RichTask) -> None:
        self.bars.remove_task(t.id)
        self._print(f"{t.description}: done in {_clock(time.monotonic() - t.started)}")

    def close(self) -> None:
        with self._lock:
            if self._status is not None:
                self.bars.remove_task(self._status)
                self._status = None
            if self._started:
                self.bars.stop()
                self._started = False


_SILENT = Progress()
_current: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("timing_progress", default=None)


def current() -> Progress:
    """The progress the running work reports to (silent unless a caller installed one)."""
    return _current.get() or _SILENT


def as_progress(p: Progress | Callable[[str], None] | None) -> Progress:
    """``p`` as a :class:`Progress`: None is silent, a plain callable receives the news lines."""
    if p is None:
        return current()
    if isinstance(p, Progress):
        return p
    return CallbackProgress(p)


@contextlib.contextmanager
def reporting(p: Progress | Callable[[str], None] | None) -> Iterator[Progress]:
    """Make ``p`` the current progress for the block (None: keep the current one)."""
    progress = as_progress(p)
    token = _current.set(progress)
    try:
        yield progress
    finally:
        _current.reset(token)


def for_terminal(quiet: bool = False, stream: IO[str] | None = None) -> Progress:
    """The command line's progress: nothing when ``quiet``, bars on a terminal, lines otherwise."""
    if quiet:
        return Progress()
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", lambda: False)
    if isatty():
        from rich.console import Console

        return RichProgress(Console(file=stream))
    return LineProgress(stream)
