"""What a newcomer meets: the README's ``timing run`` in a fresh copy, on a quiet and on a busy machine.

::

    python benchmarks/first_run.py [--runs 1] [--busy 2] [--no-record]

* Each run copies the repository's committed tree (``git archive HEAD``) into a new
  temporary folder, so it has no store, no fitted model and no compiled bytecode,
  and runs the README's ``timing run`` there with the interpreter of the
  installed virtual environment (the copy's own ``timing`` package and
  ``cli.py`` come first on the path). Stderr is not a terminal, so progress comes
  as log lines; each line is time-stamped as it arrives.
* *quiet*: nothing else of this script runs. *busy*: ``--busy`` CPU-bound Python
  processes (a tight loop each), started before the run and stopped after it.
* Measured per run: wall seconds of the whole command, its CPU seconds (user +
  system of the child, from ``wait4``), its peak RSS, the stage times ``timing
  run`` prints, and the longest silence on stderr (overall and during the fit).
* Targets on 2 cores: quiet <= 60 s; busy wall <= 2x quiet and busy CPU <= 1.3x
  quiet; no silence longer than 10 s.

A dated section goes to ``benchmarks/RESULTS.md`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "RESULTS.md"
QUIET_TARGET_S = 60.0
BUSY_WALL_RATIO = 2.0
BUSY_CPU_RATIO = 1.3
MAX_SILENCE_S = 10.0
BUSY_LOOP = "while True:\n    pass\n"


@dataclass
class Run:
    label: str
    wall: float
    cpu: float
    peak_mib: float
    rc: int
    stages: dict[str, float] = field(default_factory=dict)
    max_silence: float = 0.0
    max_fit_silence: float = 0.0
    lines: int = 0
    busy_load: str = ""


def fresh_copy(dest: Path) -> Path:
    """The committed tree of HEAD in ``dest`` (what a clone holds: no store, models or bytecode)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_once(label: str, busy: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="timing-first-run-") as tmp:
        copy = fresh_copy(Path(tmp))
        drop = ("TIMING_STORE", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env["PYTHONPATH"] = str(copy)
        hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
        try:
            if hogs:
                time.sleep(1.0)
            return _timed(label, copy, env)
        finally:
            for h in hogs:
                h.kill()
                h.wait()


def _timed(label: str, copy: Path, env: dict[str, str]) -> Run:
    cmd = [sys.executable, "-c", "import cli; cli.main()", "run"]
    stamps: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stamps.append((time.perf_counter() - t0, line.rstrip("\n")))

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    reader.join(timeout=5)
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.stderr.write("\n".join(s for _, s in stamps[-20:]) + "\n")
        raise SystemExit(f"{label}: timing run exited with {rc}")
    times = [0.0] + [t for t, _ in stamps] + [wall]
    silence = max(b - a for a, b in zip(times, times[1:], strict=False))
    fit_times = [t for t, s in stamps if _in_fit(stamps, t)]
    fit_silence = max((b - a for a, b in zip(fit_times, fit_times[1:], strict=False)), default=0.0)
    stages = {m.group(1).strip(): float(m.group(2))
              for m in re.finditer(r"^  (\S[\w ]*?)\s+([0-9.]+) s$", out, flags=re.M)}
    return Run(label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, rc, stages, silence,
               fit_silence, len(stamps))


def _in_fit(stamps: list[tuple[float, str]], t: float) -> bool:
    start = next((s for s, line in stamps if "[2/7] fit" in line), None)
    end = next((s for s, line in stamps if "[3/7]" in line), None)
    return start is not None and end is not None and start <= t <= end


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next((int(ln.split()[1]) / 2**20 for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), 0.0)
    cores = len(os.sched_getaffinity(0))
    return f"{cores} cores ({cpu}), {mem:.1f} GiB RAM, Linux {platform.release()}, Python {platform.python_version()}"


def commit() -> str:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" (with uncommitted changes, not in the copy)" if dirty else "")


def verdicts(quiet: Run, busy: Run | None) -> list[str]:
    out = [f"quiet wall {quiet.wall:.1f} s (target <= {QUIET_TARGET_S:.0f} s): "
           f"{'pass' if quiet.wall <= QUIET_TARGET_S else 'FAIL'}"]
    if busy is not None:
        wr, cr = busy.wall / quiet.wall, busy.cpu / quiet.cpu
        out.append(f"busy wall {wr:.2f}x quiet (target <= {BUSY_WALL_RATIO:g}x): "
                   f"{'pass' if wr <= BUSY_WALL_RATIO else 'FAIL'}")
        out.append(f"busy CPU {cr:.2f}x quiet (target <= {BUSY_CPU_RATIO:g}x): "
                   f"{'pass' if cr <= BUSY_CPU_RATIO else 'FAIL'}")
    worst = max(r.max_silence for r in (quiet, busy) if r is not None)
    out.append(f"longest silence on stderr {worst:.1f} s (target <= {MAX_SILENCE_S:.0f} s): "
               f"{'pass' if worst <= MAX_SILENCE_S else 'FAIL'}")
    return out


def section(runs: list[Run], quiet: Run, busy: Run | None, argv: list[str]) -> str:
    stage_names = list(dict.fromkeys(k for r in runs for k in r.stages))
    head = "| run | wall s | CPU s | CPU/wall | peak RSS MiB | longest silence s (fit) | " + \
        " | ".join(f"{s} s" for s in stage_names) + " |"
    rule = "|---|--:|--:|--:|--:|--:|" + "--:|" * len(stage_names)
    rows = [f"| {r.label} | {r.wall:.1f} | {r.cpu:.1f} | {r.cpu / r.wall:.2f} | {r.peak_mib:,.0f} | "
            f"{r.max_silence:.1f} ({r.max_fit_silence:.1f}) | "
            + " | ".join(f"{r.stages.get(s, float('nan')):.1f}" for s in stage_names) + " |" for r in runs]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "\n".join([
        "", f"### first run of `timing run`: {stamp}", "",
        f"`python benchmarks/first_run.py {' '.join(argv)}`".replace(" `", "`"), "",
        f"code: {commit()}; machine: {machine()}; TIMING_THREADS: {os.environ.get('TIMING_THREADS', 'unset')}; "
        f"load average after the runs: {load}.", "",
        head, rule, *rows, "", *[f"* {v}" for v in verdicts(quiet, busy)], "",
    ])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="runs of each kind (the median is judged)")
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the busy run (0: none)")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)
    runs: list[Run] = []
    for i in range(args.runs):
        runs.append(run_once(f"quiet {i + 1}", 0))
        print(f"quiet {i + 1}: {runs[-1].wall:.1f} s, CPU {runs[-1].cpu:.1f} s", flush=True)
        if args.busy:
            runs.append(run_once(f"busy {i + 1} ({args.busy} CPU-bound processes)", args.busy))
            print(f"busy {i + 1}: {runs[-1].wall:.1f} s, CPU {runs[-1].cpu:.1f} s", flush=True)
    quiets = sorted((r for r in runs if r.label.startswith("quiet")), key=lambda r: r.wall)
    busies = sorted((r for r in runs if r.label.startswith("busy")), key=lambda r: r.wall)
    quiet, busy = quiets[len(quiets) // 2], (busies[len(busies) // 2] if busies else None)
    text = section(runs, quiet, busy, sys.argv[1:] if argv is None else argv)
    print(text)
    if not args.no_record:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
