"""The command line: every command has help with an example; errors are one line and exit 1."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import base_tables, write_csv, write_export

from cli import main


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += all_commands(cmd, (*prefix, name))
    return out


@pytest.mark.parametrize("path", all_commands(main), ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    cmd = main
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    if not isinstance(cmd, click.Group):
        assert "Example:" in result.output


def test_the_commands_of_the_spec_exist() -> None:
    names = {" ".join(p) for p in all_commands(main)}
    assert {"demo-data", "ingest", "fit", "score", "schedule", "due", "export crm", "report", "backtest", "run"} <= names


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ingest_errors_exit_1_with_one_line_and_keep_the_store(make_export: Callable[..., Path], tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    runner = CliRunner()
    ok = runner.invoke(main, ["--store", str(store), "ingest", str(make_export()), "--as-of", "2026-06-30"])
    assert ok.exit_code == 0, ok.output
    assert "read" in ok.output and "set aside" in ok.output
    before = digest(store)

    missing = runner.invoke(main, ["--store", str(store), "ingest", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1
    assert error_lines(missing.output) == [f"Error: {tmp_path / 'nowhere'}: no such export folder"]

    t = base_tables()
    folder = write_export(tmp_path / "bad", t)
    write_csv(folder / "contracts.csv", t["contracts"], [c for c in t["contracts"][0] if c != "vehicle_id"])
    dropped = runner.invoke(main, ["--store", str(store), "ingest", str(folder)])
    assert dropped.exit_code == 1
    [line] = error_lines(dropped.output)  # progress goes to stderr; the error is one line
    assert "contracts.csv" in line and "'vehicle_id'" in line
    assert "Traceback" not in dropped.output
    assert digest(store) == before


def test_bad_dates_and_settings_are_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_date = runner.invoke(main, ["--store", str(tmp_path / "s.duckdb"), "score", "--as-of", "31/10/2026"])
    assert bad_date.exit_code == 2 and "ISO date" in bad_date.output
    cfg = tmp_path / "timing.toml"
    cfg.write_text("[schedule]\nwindow_dayz = 3\n")
    typo = runner.invoke(main, ["--config", str(cfg), "due"])
    assert typo.exit_code == 1 and "window_dayz" in typo.output


def test_commands_before_ingest_say_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "none.duckdb"), "score"])
    assert result.exit_code == 1
    assert "timing ingest" in result.output or "timing fit" in result.output
