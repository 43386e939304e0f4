"""Progress a person can follow: counts and time left, a sign of life in silences, nothing when quiet."""

from __future__ import annotations

import io
import re
import time

from timing.core import progress as prog


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_command_line_picks_bars_on_a_terminal_lines_in_a_log_and_nothing_when_quiet() -> None:
    assert isinstance(prog.for_terminal(stream=Tty()), prog.RichProgress)
    lines = prog.for_terminal(stream=io.StringIO())
    assert isinstance(lines, prog.LineProgress)
    quiet = prog.for_terminal(quiet=True, stream=Tty())
    assert type(quiet) is prog.Progress
    quiet.say("nothing")
    with quiet.task("nothing", total=3) as t:
        t.advance()


def test_log_lines_give_counts_and_the_time_left_at_most_every_interval() -> None:
    out = io.StringIO()
    p = prog.LineProgress(out, interval=0.05, heartbeat=60)
    with p.task("features at training origins", total=4) as t:
        for _ in range(4):
            time.sleep(0.06)
            t.advance()
    p.close()
    text = out.getvalue()
    assert "features at training origins (0/4)" in text
    assert re.search(r"features at training origins: [1-4]/4 \(\d+%, about \d+ s left\)", text), text
    assert re.search(r"features at training origins: done in \d+ s", text)
    # throttled: no more count lines than advances
    assert text.count("/4 (") <= 4


def test_a_silent_step_still_shows_a_sign_of_life() -> None:
    out = io.StringIO()
    p = prog.LineProgress(out, interval=60, heartbeat=0.2)
    with p.task("holdout: fitting cox"):
        time.sleep(0.9)
    p.close()
    beats = [ln for ln in out.getvalue().splitlines() if "so far" in ln]
    assert len(beats) >= 2, out.getvalue()
    assert all("holdout: fitting cox" in b for b in beats)


def test_bars_on_a_terminal_count_and_estimate_the_time_left() -> None:
    from rich.console import Console

    out = Tty()
    p = prog.RichProgress(Console(file=out, force_terminal=True, width=120))
    p.say("[1/7] ingest")
    with p.task("boosted trees, ensemble 1 of 3", total=10) as t:
        for _ in range(10):
            t.advance()
            time.sleep(0.01)
    p.close()
    text = out.getvalue()
    assert "[1/7] ingest" in text
    assert "boosted trees, ensemble 1 of 3: done in" in text


def test_current_progress_is_silent_until_installed_and_restored_after() -> None:
    news: list[str] = []
    before = prog.current()
    with prog.reporting(news.append) as p:
        assert prog.current() is p
        prog.current().say("a")
        with prog.current().task("b", total=2):
            pass
    assert prog.current() is before
    assert news == ["a", "b"]


def test_a_plain_callable_or_none_is_accepted_where_progress_is() -> None:
    assert isinstance(prog.as_progress(print), prog.CallbackProgress)
    assert prog.as_progress(None) is prog.current()
    p = prog.Progress()
    assert prog.as_progress(p) is p


def test_a_long_step_that_only_said_what_it_is_doing_still_shows_a_sign_of_life() -> None:
    out = io.StringIO()
    p = prog.LineProgress(out, interval=60, heartbeat=0.2)
    p.say("checking readings")
    time.sleep(0.8)
    p.close()
    beats = [ln for ln in out.getvalue().splitlines() if "checking readings (still at it" in ln]
    assert len(beats) >= 2, out.getvalue()


def test_names_with_brackets_are_shown_as_they_are_never_as_markup() -> None:
    from rich.console import Console

    out = Tty()
    p = prog.RichProgress(Console(file=out, force_terminal=False, width=120))
    p.say("[1/7] ingest [bold]customers.csv[/bold]")
    with p.task("reading [red]x[/red].csv", total=1) as t:
        t.advance()
    p.close()
    text = out.getvalue()
    assert "[1/7] ingest [bold]customers.csv[/bold]" in text
    assert "reading [red]x[/red].csv: done in" in text
