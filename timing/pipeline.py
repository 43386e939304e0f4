"""``timing run``: the main job, stage by stage, with a summary of where outputs went."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from timing.config import Settings
from timing.ingest import IngestReport, ingest


@dataclass(frozen=True)
class RunResult:
    ingest: IngestReport
    stage_seconds: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [self.ingest.summary(), "", "stages:"]
        lines += [f"  {name:<10}{secs:7.1f} s" for name, secs in self.stage_seconds.items()]
        if self.outputs:
            lines.append("outputs:")
            lines += [f"  {name:<10}{where}" for name, where in self.outputs.items()]
        return "\n".join(lines)


def run_pipeline(
    export_dir: Path,
    store: Path,
    settings: Settings,
    progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Ingest the export and run every stage on it."""
    say = progress or (lambda _m: None)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    say(f"[1] ingest {export_dir}")
    report = ingest(export_dir, store, progress=say)
    stages["ingest"] = time.perf_counter() - t0
    return RunResult(ingest=report, stage_seconds=stages, outputs={"store": str(store)})
