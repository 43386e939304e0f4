"""How many threads the toolkit may use, decided in one place.

The budget is ``TIMING_THREADS`` when set (a positive integer), otherwise the
cores this process may run on (``os.sched_getaffinity``, which a container's
CPU set or ``taskset`` narrows; ``os.cpu_count()`` where the platform has no
affinity). Everything that starts threads asks here:

* **DuckDB**: every connection the store opens runs ``SET threads`` to the budget
  (:func:`timing.store.db.configure`).
* **LightGBM**: each fit and prediction passes ``num_threads`` = :func:`threads_now`: the
  budget less the cores other processes keep busy when it starts (on a shared machine a thread
  without a core of its own only makes its partners wait at every synchronisation).
* **BLAS** (OpenBLAS or MKL behind numpy and scipy): ``OPENBLAS_NUM_THREADS`` and
  ``MKL_NUM_THREADS`` default to the budget when :mod:`timing` is imported, and the pools
  already loaded are limited by :func:`limit_native_threads` (threadpoolctl) whenever the
  budget is set.
* **Process pools** (the backtest's origins, the strategy simulations): workers
  times the threads each one uses stay within the budget (:func:`split`); each
  worker runs with its share as its own budget (:func:`worker_init`).

OpenMP runtimes are told not to spin while they wait: a worker thread that has
finished its part of a parallel loop sleeps after a short spin instead of
burning a core the other processes of a shared machine could use
(``GOMP_SPINCOUNT`` for GNU OpenMP, which LightGBM's Linux wheels use;
``KMP_BLOCKTIME`` for LLVM's and Intel's). These are set, unless the user set
them or ``OMP_WAIT_POLICY``, when :mod:`timing` is imported, before any OpenMP
runtime is loaded; set them yourself if you import LightGBM first.

Nothing here changes results: LightGBM's fits are deterministic whatever the
number of threads (``deterministic`` with row-wise histograms), and DuckDB's
queries in this package do not depend on it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from timing.core.errors import ThreadsError

ENV = "TIMING_THREADS"

#: Spin iterations of a GNU OpenMP thread before it sleeps (libgomp's own default is 300,000, or
#: much more under ``OMP_WAIT_POLICY=active``): long enough for the short waits between a fit's
#: parallel loops on a quiet machine, short enough not to steal a shared core.
GOMP_SPINCOUNT = "10000"
#: Milliseconds an LLVM/Intel OpenMP thread waits awake before it sleeps.
KMP_BLOCKTIME = "1"

#: Variables BLAS libraries read when they load.
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_override: int | None = None


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def threads() -> int:
    """The thread budget: :func:`set_threads`, else ``TIMING_THREADS``, else :func:`available_cores`."""
    if _override is not None:
        return _override
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return available_cores()
    try:
        n = int(raw)
    except ValueError:
        raise ThreadsError(f"{ENV}='{raw}' is not a whole number of threads") from None
    if n < 1:
        raise ThreadsError(f"{ENV}={n}: the number of threads must be at least 1")
    return n


def set_threads(n: int | None) -> None:
    """Set this process's budget (None: back to ``TIMING_THREADS`` or the cores)."""
    global _override
    if n is not None and int(n) < 1:
        raise ThreadsError(f"the number of threads must be at least 1, not {n}")
    _override = None if n is None else int(n)
    limit_native_threads()


def idle_cores(window: float = 0.1) -> float | None:
    """How many of the cores this process may use were idle or used by this process itself over the
    next ``window`` seconds (``/proc/stat`` per CPU); None where the system does not say."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        before, mine_before, t0 = _cpu_jiffies(cpus), _own_jiffies(), time.monotonic()
        time.sleep(window)
        after, mine_after, t1 = _cpu_jiffies(cpus), _own_jiffies(), time.monotonic()
    except (AttributeError, OSError, ValueError, IndexError):
        return None
    idle = 0.0
    for (busy0, total0), (busy1, total1) in zip(before, after, strict=True):
        span = total1 - total0
        idle += 1.0 - (busy1 - busy0) / span if span > 0 else 1.0
    own = (mine_after - mine_before) / os.sysconf("SC_CLK_TCK") / max(t1 - t0, 1e-6)
    return max(0.0, min(float(len(cpus)), idle + own))


def _cpu_jiffies(cpus: list[int]) -> list[tuple[float, float]]:
    """(busy, busy + idle) jiffies since boot of each of ``cpus``."""
    rows = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            f = [float(v) for v in values[:8]]
            idle = f[3] + f[4]  # idle + iowait
            rows[int(name[3:])] = (sum(f) - idle, sum(f))
    return [rows[c] for c in cpus]


def _own_jiffies() -> float:
    parts = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return float(parts[11]) + float(parts[12])  # utime + stime of every thread of this process


def threads_now() -> int:
    """Threads for a burst of parallel native work starting now (a LightGBM fit): the budget, less the
    cores other processes are keeping busy, at least one. A thread that has no core of its own only
    waits on its partners at every synchronisation; results do not depend on the number."""
    budget = threads()
    if budget == 1:
        return 1
    idle = idle_cores()
    if idle is None:
        return budget
    return max(1, min(budget, int(idle + 0.5)))


def split(tasks: int) -> tuple[int, int]:
    """(worker processes, threads each) for ``tasks`` independent jobs within the budget: as many
    workers as tasks and budget allow, the budget shared between them (never more threads in all)."""
    budget = threads()
    workers = max(1, min(int(tasks), budget))
    return workers, max(1, budget // workers)


def prepare_environment() -> None:
    """Before any BLAS or OpenMP runtime is loaded (importing :mod:`timing` does it): BLAS pools no
    larger than the budget, and OpenMP runtimes told not to spin (see the module's notes), unless
    the user chose otherwise in the environment."""
    try:
        budget = str(threads())
    except ThreadsError:  # reported where the budget is used
        budget = str(available_cores())
    for name in BLAS_ENV:
        os.environ.setdefault(name, budget)
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
        os.environ.setdefault("KMP_BLOCKTIME", KMP_BLOCKTIME)


def limit_native_threads() -> Any:
    """Limit the BLAS and OpenMP pools already loaded in this process to the budget (threadpoolctl).
    Returns threadpoolctl's limiter, or None where nothing could be limited."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return threadpool_limits(limits=threads())


def worker_init(n: int) -> None:
    """Initializer of a pool's worker process: its share of the budget becomes its own budget."""
    os.environ[ENV] = str(int(n))
    set_threads(int(n))
