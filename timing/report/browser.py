"""Headless Chromium (when installed): print the report to PDF, take a screenshot, catch console errors.

Nothing here is required: the report is complete without a browser, and
every caller checks :func:`find_chromium` first.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
#: Flags for a quiet, offline, throw-away browser.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-default-apps", "--mute-audio")
CONSOLE_ERRORS = ("Uncaught", "ERROR:CONSOLE", "Failed to load resource")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name) if not name.startswith("/") else (name if Path(name).exists() else None)
        if found:
            return found
    return None


def run_chromium(binary: str, page: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``page`` with a fresh profile folder (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="timing-chromium-") as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args, Path(page).resolve().as_uri()]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def print_pdf(page: Path, pdf: Path) -> str | None:
    """Write ``pdf`` from ``page`` with the first engine found; the engine's name, or None if there is none."""
    binary = find_chromium()
    if binary:
        done = run_chromium(binary, page, f"--print-to-pdf={Path(pdf).resolve()}", "--no-pdf-header-footer")
        if done.returncode == 0 and Path(pdf).exists():
            return "chromium"
    try:
        import weasyprint  # type: ignore[import-not-found]
    except ImportError:
        return None
    weasyprint.HTML(filename=str(page)).write_pdf(str(pdf))
    return "weasyprint"


def console_errors(log: str) -> list[str]:
    """Lines of a Chromium log (``--enable-logging=stderr``) that report a page error."""
    return [line for line in log.splitlines() if any(k in line for k in CONSOLE_ERRORS)]
