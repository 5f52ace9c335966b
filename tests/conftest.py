"""Shared fixtures: paths to real data, a CliRunner with a pinned console width."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Real servers (redis-server, Tansu Kafka broker, a test HTTP model endpoint) for sink tests.
pytest_plugins = ["conftest_services"]

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Pin rich/typer output so CLI text assertions do not depend on the terminal.
os.environ.setdefault("COLUMNS", "120")
os.environ.setdefault("TERM", "dumb")
os.environ.pop("FORCE_COLOR", None)


def shared_table(name: str) -> Path:
    """Path to a real table in ../shared/data (never copied into the repo)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.fail(f"real data table {path} is missing; CI lays ../shared/data beside the repo")
    return path


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()
