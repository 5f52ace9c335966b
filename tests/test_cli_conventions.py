"""Typer's own conventions on every command: choices and ranges checked by the parser (exit 2
naming the flag), no '<bool>' beside a flag, defaults shown by Typer, replay's options in panels,
older flag spellings hidden but working."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from rtml_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = str(ROOT / "sample_data" / "clickstream.parquet")


def _flat(text: str) -> str:
    """Help and errors come in Rich boxes that wrap lines: one line, box drawing removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _commands() -> list[list[str]]:
    group = typer.main.get_command(app)
    out: list[list[str]] = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        out += [[name, sub] for sub in subs] if subs else [[name]]
    return sorted(out)


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_no_flag_shows_a_bool_type(runner, command: list[str]) -> None:
    r = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "<bool>" not in r.output and "--help" in r.output


def test_root_help_shows_no_bool_either(runner) -> None:
    r = runner.invoke(app, ["--help"], terminal_width=200)
    assert r.exit_code == 0 and "--debug" in r.output and "<bool>" not in r.output


def test_replay_options_come_in_panels(runner) -> None:
    r = runner.invoke(app, ["replay", "--help"], terminal_width=200)
    assert r.exit_code == 0
    panels = re.findall(r"╭─ (.+?) ─", r.output)
    assert panels == [
        "Arguments",
        "Options",
        "Pacing",
        "Selection",
        "Columns",
        "Network targets (http, kafka, redis)",
        "HTTP",
        "Kafka",
        "Redis",
    ]
    http = r.output[r.output.index("╭─ HTTP") : r.output.index("╭─ Kafka")]
    assert "--concurrency" in http and "--timeout" in http and "--speed" not in http


def test_defaults_are_shown_by_typer_not_typed_into_help(runner) -> None:
    r = runner.invoke(app, ["replay", "--help"], terminal_width=200)
    flat = _flat(r.output)
    assert "(default 1)" not in flat and "(default 10s)" not in flat and "(default 5)" not in flat
    assert re.search(r"--timeout DURATION .*?\[default: \(10s\)\]", flat)
    assert re.search(r"--retries .*?\[default: \(5\)\]", flat)
    assert "[data] roles" in flat  # Rich markup must not eat the section name


@pytest.mark.parametrize(
    "args, flag",
    [
        (["replay", SAMPLE, "--concurrency", "0", "--to", "http://127.0.0.1:9/"], "--concurrency"),
        (["replay", SAMPLE, "--batch-size", "0", "--to", "http://127.0.0.1:9/"], "--batch-size"),
        (["replay", SAMPLE, "--retries", "-1", "--to", "http://127.0.0.1:9/"], "--retries"),
        (["replay", SAMPLE, "--limit", "-5"], "--limit"),
        (["replay", SAMPLE, "--resume-from", "-1"], "--resume-from"),
        (["replay", SAMPLE, "--maxlen", "0", "--to", "redis://127.0.0.1:9/s"], "--maxlen"),
        (["replay", SAMPLE, "--seed", "-1", "--disorder", "1s"], "--seed"),
        (["replay", SAMPLE, "--time-unit", "sec"], "--time-unit"),
        (["compare", SAMPLE, "--jobs", "0"], "--jobs"),
        (["compare", SAMPLE, "--calendar", "hour,weekday"], "--calendar"),
        (["sample", "clickstream", "--rows", "-3"], "--rows"),
        (["report", "no-such-run", "--format", "htm"], "--format"),
        (["report", "no-such-run", "--workers", "0"], "--workers"),
        (["features", SAMPLE, "-o", "f.parquet", "--calendar", "day"], "--calendar"),
        (
            [
                "export",
                "flink",
                SAMPLE,
                "--source",
                "ndjson:a",
                "--sink",
                "ndjson:b",
                "-o",
                "j.sql",
                "--mode",
                "stream",
            ],
            "--mode",
        ),  # fmt: skip
        (
            [
                "export",
                "flink",
                SAMPLE,
                "--source",
                "ndjson:a",
                "--sink",
                "ndjson:b",
                "-o",
                "j.sql",
                "--parallelism",
                "0",
            ],
            "--parallelism",
        ),  # fmt: skip
    ],
)
def test_a_bad_choice_or_count_is_caught_by_the_parser(
    runner, tmp_path: Path, monkeypatch, args: list[str], flag: str
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, not even by mistake
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{flag}'" in r.output
    assert "Traceback" not in r.output and list(tmp_path.iterdir()) == []


def test_a_bad_choice_lists_the_allowed_ones(runner) -> None:
    r = runner.invoke(app, ["report", "no-such-run", "--format", "htm"])
    flat = _flat(r.output)
    for name in ("terminal", "markdown", "html", "json", "junit"):
        assert name in flat
    r = runner.invoke(app, ["compare", SAMPLE, "--calendar", "hour,weekday"])
    assert "'weekday' is not a calendar part. Allowed: hour, dow." in _flat(r.output)


def _help_texts(cmd, name: str = "rtml"):
    yield name, cmd.help or ""
    for param in cmd.params:
        yield f"{name} {param.opts[0] if param.opts else param.name}", getattr(param, "help", "")
    for sub_name, sub in getattr(cmd, "commands", {}).items():
        yield from _help_texts(sub, f"{name} {sub_name}")


def test_help_texts_escape_what_rich_would_read_as_markup() -> None:
    """Rich drops '[data]' or 'rtml[flink]' from help as unknown style tags: write '\\\\[data]'."""
    tag = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*\]")
    unescaped = [
        (where, found)
        for where, text in _help_texts(typer.main.get_command(app))
        for found in tag.findall(text or "")
    ]
    assert unescaped == []


def test_escaped_brackets_reach_the_reader(runner) -> None:
    r = runner.invoke(app, ["export", "flink", "--help"], terminal_width=200)
    assert "pip install 'rtml[flink]'" in _flat(r.output) and "\\[" not in r.output


def test_report_output_is_a_hidden_alias_of_out(runner, tmp_path: Path) -> None:
    run = ROOT / "tests" / "data" / "run_small"
    for flag in ("--out", "--output"):
        target = tmp_path / f"r{flag}.json"
        r = runner.invoke(app, ["report", str(run), flag, str(target)])
        assert r.exit_code == 0, r.output
        assert target.read_text().lstrip().startswith("{")  # format from the suffix
    r = runner.invoke(app, ["report", "--help"], terminal_width=200)
    assert "--out" in r.output and "--output" not in r.output
    r = runner.invoke(
        app, ["report", str(run), "-o", str(tmp_path / "a.md"), "--output", str(tmp_path / "b.md")]
    )
    assert r.exit_code == 2 and "--output is the older name of --out" in r.output
    assert not (tmp_path / "a.md").exists() and not (tmp_path / "b.md").exists()
