"""Open a report in headless Chromium: take a screenshot and fail on page errors.

Usage::

    python scripts/render_report.py reports/2026-10/index.html [--screenshot docs/report-screenshot.png]

Exit codes: 0 rendered cleanly; 1 the page logged an error (or no screenshot
came out); 2 Chromium is not installed (the report itself needs no browser).
The browser runs offline with a throw-away profile; its console is read from
``--enable-logging=stderr``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from timing.report.browser import console_errors, find_chromium, run_chromium

WINDOW = "1280,3000"


def render(page: Path, screenshot: Path, window: str = WINDOW) -> list[str]:
    """Screenshot ``page`` into ``screenshot``; the page's console errors (empty when clean)."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not installed (looked for /usr/bin/chromium and chromium on PATH)")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    done = run_chromium(binary, page, "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
                        f"--window-size={window}", f"--screenshot={screenshot.resolve()}")
    errors = console_errors(done.stderr)
    if done.returncode != 0:
        errors.append(f"chromium exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    if not screenshot.exists() or screenshot.stat().st_size == 0:
        errors.append(f"no screenshot was written to {screenshot}")
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report_html", type=Path)
    ap.add_argument("--screenshot", type=Path, default=None,
                    help="PNG to write (default: a temporary file, removed afterwards)")
    ap.add_argument("--window-size", default=WINDOW, help=f"width,height in pixels [{WINDOW}]")
    args = ap.parse_args(argv)
    if not args.report_html.exists():
        print(f"{args.report_html}: no such file", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        shot = args.screenshot or Path(tmp) / "report.png"
        try:
            errors = render(args.report_html, shot, args.window_size)
        except FileNotFoundError as e:
            print(e, file=sys.stderr)
            return 2
        for line in errors:
            print(line, file=sys.stderr)
        if not errors:
            print(f"rendered {args.report_html} cleanly" + (f"; screenshot {shot}" if args.screenshot else ""))
        return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
