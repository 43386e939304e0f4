"""One place decides the threads: the budget, its split between processes, and who obeys it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import duckdb
import pytest

from timing.core import runtime
from timing.store.db import configure


@pytest.fixture(autouse=True)
def _fresh_budget(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(runtime.ENV, raising=False)
    runtime.set_threads(None)
    yield
    monkeypatch.delenv(runtime.ENV, raising=False)
    runtime.set_threads(None)


def test_default_budget_is_the_cores_this_process_may_use() -> None:
    assert runtime.threads() == len(os.sched_getaffinity(0))


def test_environment_variable_sets_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.ENV, "3")
    assert runtime.threads() == 3


@pytest.mark.parametrize("raw", ["two", "0", "-1", "1.5"])
def test_a_bad_budget_is_a_clear_error_naming_the_setting(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(runtime.ENV, raw)
    with pytest.raises(runtime.ThreadsError, match=runtime.ENV):
        runtime.threads()


def test_set_threads_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.ENV, "4")
    runtime.set_threads(1)
    assert runtime.threads() == 1
    runtime.set_threads(None)
    assert runtime.threads() == 4


@pytest.mark.parametrize(("budget", "tasks", "expected"),
                         [(2, 4, (2, 1)), (2, 1, (1, 2)), (8, 3, (3, 2)), (1, 5, (1, 1)), (4, 4, (4, 1))])
def test_processes_times_threads_stay_within_the_budget(budget: int, tasks: int, expected: tuple[int, int]) -> None:
    runtime.set_threads(budget)
    workers, each = runtime.split(tasks)
    assert (workers, each) == expected
    assert workers * each <= budget


def test_duckdb_connections_use_the_budget() -> None:
    runtime.set_threads(1)
    con = configure(duckdb.connect())
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1


def test_blas_pools_are_limited_to_the_budget() -> None:
    import numpy  # noqa: F401  (loads OpenBLAS)
    from threadpoolctl import threadpool_info

    runtime.set_threads(1)
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas)


def test_lightgbm_takes_only_the_cores_others_leave_idle() -> None:
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        runtime.set_threads(len(os.sched_getaffinity(0)))
        time.sleep(0.3)
        idle = runtime.idle_cores(0.3)
        assert idle is not None and idle <= runtime.available_cores() - 0.5
        if runtime.available_cores() >= 2:
            assert runtime.threads_now() <= runtime.available_cores() - 1
    finally:
        hog.kill()
        hog.wait()


def test_lightgbm_is_given_the_budget() -> None:
    from timing.models.boost import BoostedHazard

    runtime.set_threads(1)
    assert BoostedHazard().params()["num_threads"] == 1


def test_openmp_is_told_not_to_spin_unless_the_user_chose() -> None:
    code = "import os, timing; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('KMP_BLOCKTIME'))"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [runtime.GOMP_SPINCOUNT, runtime.KMP_BLOCKTIME]
    env["OMP_WAIT_POLICY"] = "active"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["None", "None"]


def test_worker_init_makes_the_share_the_workers_budget() -> None:
    code = ("from timing.core import runtime; runtime.worker_init(1); import duckdb; from timing.store.db import configure; "
            "print(runtime.threads(), configure(duckdb.connect()).execute(\"SELECT current_setting('threads')\")"
            ".fetchone()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]
