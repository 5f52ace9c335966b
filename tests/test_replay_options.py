"""`rtml replay`: roles from rtml.toml, --max-gap needs --speed, reserved column names, and
progress on stderr (notes first, a status line while it runs, never on stdout)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rtml_cli.cli import app
from rtml_cli.errors import UsageError
from rtml_cli.io import Roles
from rtml_cli.replay import ReplayOptions, replay
from rtml_cli.replay_options import validate_options
from rtml_cli.replay_progress import Progress
from rtml_cli.sinks.base import MessageBatch, Sink

T0 = dt.datetime(2024, 1, 1)
ROOT = Path(__file__).resolve().parent.parent


def _df(n: int = 6) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "when": [T0 + dt.timedelta(minutes=10 * i) for i in range(n)],
            "stamp": [T0 + dt.timedelta(minutes=10 * i, seconds=5) for i in range(n)],
            "v": list(range(n)),
            "junk": ["z"] * n,
            "y": [i % 2 for i in range(n)],
        }
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in text.splitlines() if x.startswith("{")]


def _folder(tmp_path: Path, toml: str | None) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    _df().write_parquet(folder / "t.parquet")
    if toml is not None:
        (folder / "rtml.toml").write_text(toml)
    return folder / "t.parquet"


CONFIG = """
[data]
time = "when"
label = "y"
ignore = ["junk"]
label_delay = "1m"

[model]
preset = "sgd"
"""


# ------------------------------------------------------------------ 4. roles from rtml.toml


def test_roles_come_from_the_config_beside_the_table(runner, tmp_path: Path) -> None:
    t = _folder(tmp_path, CONFIG)
    r = runner.invoke(app, ["replay", str(t)])
    assert r.exit_code == 0, r.output
    cfg = t.parent / "rtml.toml"
    assert f"note: using roles from {cfg} (time=when, label=y, ignore=junk, label_delay=1m)" in (
        r.stderr
    )
    msgs = _lines(r.stdout)
    events = [m for m in msgs if m["rtml_kind"] == "event"]
    labels = [m for m in msgs if m["rtml_kind"] == "label"]
    assert all("junk" not in m and "y" not in m for m in events)
    assert labels[0]["y"] == 0 and labels[0]["rtml_time"] == "2024-01-01T00:01:00"


def test_flags_override_the_config(runner, tmp_path: Path) -> None:
    t = _folder(tmp_path, CONFIG)
    r = runner.invoke(
        app, ["replay", str(t), "--label-delay", "2m", "--ignore", "v", "--time-col", "stamp"]
    )
    assert r.exit_code == 0, r.output
    assert "time=when" not in r.stderr and "label=y" in r.stderr
    msgs = _lines(r.stdout)
    ev = [m for m in msgs if m["rtml_kind"] == "event"][0]
    assert "v" not in ev and ev["junk"] == "z" and ev["rtml_time"] == "2024-01-01T00:00:05"
    lab = [m for m in msgs if m["rtml_kind"] == "label"][0]
    assert lab["rtml_time"] == "2024-01-01T00:02:05"


def test_explicit_config_path(runner, tmp_path: Path) -> None:
    t = _folder(tmp_path, None)
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text(CONFIG)
    r = runner.invoke(app, ["replay", str(t), "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert f"using roles from {cfg}" in r.stderr and "given by --config" in r.stderr
    assert all("junk" not in m for m in _lines(r.stdout))
    r = runner.invoke(app, ["replay", str(t), "--time-col", "when"])  # nothing beside the table
    assert "using roles" not in r.stderr and _lines(r.stdout)[0]["junk"] == "z"


@pytest.mark.parametrize(
    "toml, needle",
    [
        ("[data]\ntme = 'when'\n", "unknown key 'tme'"),
        ("[data\ntime = 'when'\n", "not valid TOML"),
        ("[data]\nlabel = 3\n", "[data] label"),
        ("[data]\nignore = [1]\n", "[data] ignore"),
        ("[data]\nlabel_delay = 'soon'\n", "label_delay"),
        ("[dta]\ntime = 'when'\n", "unknown key 'dta'"),
        ("[data]\ntime = 'nope'\n", "nope"),
    ],
)
def test_a_bad_config_is_exit_2(runner, tmp_path: Path, toml: str, needle: str) -> None:
    t = _folder(tmp_path, toml)
    r = runner.invoke(app, ["replay", str(t)])
    assert r.exit_code == 2, r.output
    assert needle in r.output


def test_missing_explicit_config_is_exit_2(runner, tmp_path: Path) -> None:
    t = _folder(tmp_path, None)
    r = runner.invoke(app, ["replay", str(t), "--config", str(tmp_path / "no.toml")])
    assert r.exit_code == 2 and "no.toml" in r.output


def test_the_model_of_the_config_is_never_imported(runner, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    t = _folder(tmp_path, '[data]\ntime = "when"\n[model]\nfactory = "evil.py:make"\n')
    (t.parent / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\ndef make():\n    return None\n"
    )
    r = runner.invoke(app, ["replay", str(t)])
    assert r.exit_code == 0, r.output
    assert not marker.exists()


def test_the_shipped_sample_replays_with_its_roles(runner) -> None:
    table = ROOT / "sample_data" / "clickstream.parquet"
    r = runner.invoke(app, ["replay", str(table), "--limit", "3"])
    assert r.exit_code == 0, r.output
    assert "note: using roles from" in r.stderr and "label_time=click_time" in r.stderr
    events = [m for m in _lines(r.stdout) if m["rtml_kind"] == "event"]
    assert len(events) == 3 and all("item_id" not in m for m in events)  # [data] ignore


# ------------------------------------------------------------------ 5. --max-gap needs --speed


@pytest.mark.parametrize("pace", [["--rate", "100"], ["--max-speed"], []])
def test_max_gap_without_speed_is_a_usage_error(runner, tmp_path: Path, pace: list[str]) -> None:
    t = _folder(tmp_path, None)
    out = tmp_path / "o.ndjson"
    r = runner.invoke(app, ["replay", str(t), "--max-gap", "5m", *pace, "--to", str(out)])
    assert r.exit_code == 2, r.output
    assert "--max-gap" in r.output and "--speed" in r.output and not out.exists()
    with pytest.raises(UsageError, match="--max-gap"):
        validate_options(ReplayOptions(max_gap_us=1, rate=5.0))
    validate_options(ReplayOptions(max_gap_us=1, speed=5.0))


# ------------------------------------------------------------------ 7. reserved column names


@pytest.mark.parametrize(
    "name", ["rtml_kind", "rtml_time", "rtml_event_id", "rtml_row", "rtml_t", "rtml_json"]
)
def test_a_reserved_column_name_is_refused_unless_ignored(
    runner, tmp_path: Path, name: str
) -> None:
    t = tmp_path / "t.parquet"
    _df().with_columns(pl.lit(7).alias(name)).write_parquet(t)
    r = runner.invoke(app, ["replay", str(t), "--time-col", "when"])
    assert r.exit_code == 2, r.output
    assert f"'{name}'" in r.output and "reserved" in r.output
    assert f"--ignore {name}" in r.output and "rename" in r.output
    r = runner.invoke(app, ["replay", str(t), "--time-col", "when", "--ignore", name])
    assert r.exit_code == 0, r.output
    msgs = _lines(r.stdout)
    assert {m["rtml_kind"] for m in msgs} == {"event", "label"}
    assert [m["rtml_event_id"] for m in msgs if m["rtml_kind"] == "event"] == list(range(6))


# ------------------------------------------------------------------ 6. notes first, progress


def test_notes_are_printed_before_the_first_message(tmp_path: Path) -> None:
    t = _folder(tmp_path, None)
    order: list[str] = []

    class Recording(Sink):
        target = "rec"

        def write(self, batch: MessageBatch) -> None:
            order.append("write")

        def close(self) -> None:
            order.append("close")

    replay(
        str(t),
        Roles(time="when"),
        ReplayOptions(),
        to=Recording(),
        on_start=lambda src: order.append(f"notes {len(src.notes)}"),
    )
    assert order[0].startswith("notes") and int(order[0].split()[1]) >= 1
    assert order[1] == "write" and order[-1] == "close"


def test_progress_goes_to_stderr_between_notes_and_summary(
    runner, tmp_path: Path, monkeypatch
) -> None:
    from rtml_cli import replay_progress

    monkeypatch.setattr(replay_progress, "LOG_INTERVAL_S", 0.0)  # a line on every send
    t = _folder(tmp_path, None)
    r = runner.invoke(app, ["replay", str(t), "--time-col", "when", "--rate", "2000", "--to", "-"])
    assert r.exit_code == 0, r.output
    assert all(line.startswith("{") for line in r.stdout.splitlines())  # data only on stdout
    err = r.stderr
    progress = [ln for ln in err.splitlines() if ln.startswith("replay: ")]
    assert progress and all("of 12 messages" in ln and "messages/s" in ln for ln in progress)
    assert "late " in progress[-1] and "event time 2024-01-01T" in progress[-1]
    assert progress[-1].startswith("replay: 12 of 12 messages (100%)")
    assert err.index("note: label column") < err.index("replay: ") < err.index("replay done")


def test_default_log_interval_is_ten_seconds_and_quiet_for_a_short_replay(
    runner, tmp_path: Path
) -> None:
    from rtml_cli import replay_progress

    assert replay_progress.LOG_INTERVAL_S == 10.0
    t = _folder(tmp_path, None)
    r = runner.invoke(app, ["replay", str(t), "--time-col", "when", "--rate", "2000"])
    assert r.exit_code == 0 and "replay: " not in r.stderr


def test_progress_is_rate_limited() -> None:
    out = io.StringIO()
    p = Progress(out, total=100, tty=False, interval_s=10.0)
    s = p.start_ns
    assert not p.due(s + 9_999_999_999) and p.due(s + 10_000_000_000)
    p.update(50, T0, 2_000_000.0, now_ns=s + 10_000_000_000)
    assert not p.due(s + 19_000_000_000) and p.due(s + 20_000_000_000)
    assert out.getvalue() == (
        "replay: 50 of 100 messages (50%), 5 messages/s, event time 2024-01-01T00:00:00, "
        "late 2.0ms\n"
    )


def test_terminal_status_line_is_redrawn_in_place_and_cleared() -> None:
    out = io.StringIO()
    p = Progress(out, total=10, tty=True, interval_s=0.25)
    assert p.interval_ns == 250_000_000
    p.update(3, None, None, now_ns=p.start_ns + 10**9)
    p.update(10, None, None, now_ns=p.start_ns + 2 * 10**9)
    p.finish()
    text = out.getvalue()
    assert "\n" not in text and text.count("\r") == 4
    assert text.endswith("\r") and "replay: 10 of 10 messages (100%)" in text
