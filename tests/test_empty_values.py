"""An empty value in a list or an address is a mistake to name, never silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rtml_cli.cli import app
from rtml_cli.errors import UsageError
from rtml_cli.sweep_grid import parse_grid


@pytest.mark.parametrize("item", ["retrain_every=1d,,6h", "retrain_every=1d,6h,"])
def test_a_grid_value_lost_between_commas_is_refused(item: str) -> None:
    with pytest.raises(UsageError, match="empty value between commas; write retrain_every=1d,6h"):
        parse_grid([item])


def test_an_empty_dask_address_is_refused_not_run_in_process(tmp_path: Path) -> None:
    from rtml_cli.sample import clickstream

    table = tmp_path / "t.parquet"
    clickstream(300, seed=0).write_parquet(table)
    res = CliRunner().invoke(app, ["compare", str(table), "--dask", "", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "--dask (or RTML_DASK_ADDRESS) is empty" in res.output
    assert not (tmp_path / "r").exists()
