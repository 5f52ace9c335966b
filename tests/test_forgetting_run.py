"""The forgetting section of a real run: a fast online learner forgets, all-history retrains don't."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtml_cli.compare import prepare, run_strategies
from rtml_cli.config import build_config
from rtml_cli.forgetting_run import forgetting_section, roc_auc
from rtml_cli.sample import recurring

FAST_SGD = {
    "estimator": "sklearn.linear_model:SGDClassifier",
    "params": {"loss": "log_loss", "learning_rate": "constant", "eta0": 0.05, "max_iter": 5,
               "tol": None},
}  # fmt: skip


def test_online_forgets_the_b_phase_that_all_history_retrains_never_learned(tmp_path: Path):
    path = tmp_path / "recurring.parquet"
    recurring(3_000, seed=0, period_s=400).write_parquet(path)  # A → B → A over about 14 days
    cfg = build_config(
        {"model": FAST_SGD, "data": {"time": "ts", "label": "y"}},
        warmup="0.2",
        label_delay="1m",
        strategies="stream:1d,online:1,static",
    )
    prep = prepare(path, cfg)
    results = run_strategies(prep, timing_sample=0)
    views = [prep.view_for(s) for s in cfg.strategies]
    got = forgetting_section(cfg.strategies, views, prep.data, prep.builder, results)
    assert set(got) == {"stream", "online"}  # static never changes: nothing to forget
    online, stream = got["online"], got["stream"]
    n = len(online["block_ends"])
    assert len(online["matrix"]) == n and len(online["per_block"]) == n - 1
    assert all(online["matrix"][s][b] is None for s in range(n) for b in range(s + 1, n))
    # the online learner was right during B and has unlearned it by the end; the all-history
    # model never learned B well, so it has little to forget
    assert online["max"] > 0.3 and online["mean"] > stream["mean"] + 0.1
    # the reading is the matrix's: best snapshot on the worst block minus the final one
    b = online["max_block"]
    column = [online["matrix"][s][b] for s in range(b, n)]
    assert abs(max(column) - column[-1] - online["max"]) < 1e-12


def test_snapshots_of_a_scheduled_strategy_are_the_fits_it_served_with(tmp_path: Path):
    # the refitted snapshot at the last block end scores the last block exactly like the run did
    path = tmp_path / "recurring.parquet"
    recurring(2_000, seed=3, period_s=400).write_parquet(path)
    cfg = build_config({"data": {"time": "ts", "label": "y"}}, warmup="0.3", strategies="stream:2d")
    prep = prepare(path, cfg)
    (res,) = run_strategies(prep, timing_sample=0)
    got = forgetting_section(cfg.strategies, [prep.view_for(cfg.strategies[0])], prep.data,
                             prep.builder, [res], per_block=10**9)  # fmt: skip
    d = prep.data
    last_end = np.datetime64(got["stream"]["block_ends"][-1]).astype("datetime64[us]").astype(int)
    rows = np.flatnonzero((d.t >= last_end - d.block_us) & (d.t < last_end))
    rows = rows[rows >= d.s0]
    served = roc_auc(d.y[rows], res.score[rows - d.s0])
    assert got["stream"]["matrix"][-1][-1] == served
    # spans run elsewhere (--jobs, --dask) keep no snapshot: refitting them gives the same matrix
    assert res.snapshots is not None
    res.snapshots = None
    again = forgetting_section(cfg.strategies, [prep.view_for(cfg.strategies[0])], prep.data,
                               prep.builder, [res], per_block=10**9)  # fmt: skip
    assert again == got


def test_rank_auc_equals_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(float)
    s = np.round(rng.random(500), 2)  # many ties
    assert abs(roc_auc(y, s) - roc_auc_score(y, s)) < 1e-12
    assert np.isnan(roc_auc(np.ones(5), s[:5]))


def test_jobs_2_with_a_factory_model_gives_the_serial_forgetting(tmp_path: Path):
    # an online strategy run in a worker scores its snapshots there: a factory file's models
    # need not survive the trip back (they crashed the worker's result before)
    from rtml_cli.compare import run_compare
    from rtml_cli.sample import clickstream

    table = tmp_path / "clicks.parquet"
    clickstream(3000, seed=0).write_parquet(table)
    factory = str(Path(__file__).resolve().parents[1] / "examples" / "model.py") + ":make_model"
    runs = [
        run_compare(
            table,
            model=factory,
            strategies="stream:1d,online:1",
            jobs=jobs,
            out=tmp_path / f"j{jobs}",
            timing_sample=0,
        )  # fmt: skip
        for jobs in (1, 2)
    ]
    serial, parallel = (r.metrics["forgetting"] for r in runs)
    assert set(serial) == {"stream", "online"} and parallel == serial
