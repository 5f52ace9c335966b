"""Write ``tests/data/run_small/``: a small synthetic run directory for report golden tests.

Follows the run-directory schemas of docs/ARCHITECTURE.md, so the report can be built and tested
before (and independently of) the compare engine. Deterministic (seeded); rerun with
``python tests/data/make_run_small.py`` after a schema change, then rerun the report tests.

Four strategies with known ordering: ``stream`` beats ``batch_daily`` clearly (fresh features),
``online`` is a little better than ``stream`` and ``static`` degrades with drift.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from rtml_cli.metrics import compute_metrics  # noqa: E402
from rtml_cli.runs import write_run_dir  # noqa: E402

N = 900
DAYS = 6
STRATEGIES = [
    {"name": "batch_daily", "kind": "batch", "retrain_every": "1d", "train_window": "all"},
    {"name": "stream", "kind": "stream", "retrain_every": "1d", "train_window": "all"},
    {"name": "online", "kind": "online", "update_every": 1},
    {"name": "static", "kind": "static"},
]
SKILL = {"batch_daily": 1.2, "stream": 2.0, "online": 2.2, "static": 1.6}


def build(out: Path) -> None:
    rng = np.random.default_rng(7)
    start = dt.datetime(2024, 3, 1)
    warm_end = start + dt.timedelta(days=1)
    # Arrivals: a daily cycle (busier in daytime) over DAYS days after warm-up.
    span_s = DAYS * 86400
    raw = np.sort(rng.uniform(0, span_s, size=N * 3))
    hour = (raw % 86400) / 3600
    keep = rng.uniform(size=raw.size) < (0.2 + 0.8 * np.exp(-((hour - 14) ** 2) / 18))
    secs = raw[keep][:N]
    n = secs.size
    t = [warm_end + dt.timedelta(seconds=float(s)) for s in secs]
    signal = rng.normal(size=n)
    drift = np.sin(secs / 86400 * 1.3)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(1.5 * signal + drift)))).astype(float)
    y[rng.uniform(size=n) < 0.02] = np.nan  # a few unknown outcomes
    rows = []
    for st in STRATEGIES:
        name, kind = st["name"], st["kind"]
        noise = rng.normal(size=n)
        extra = -0.8 * drift * (secs / span_s) if name == "static" else 0.0
        logit = SKILL[name] * signal * 0.8 + noise * (2.2 - SKILL[name]) + drift * 0.5 + extra
        score = 1 / (1 + np.exp(-logit))
        day = np.floor(secs / 86400)
        cutoff_s = day * 86400
        if kind == "batch":
            features_time = [warm_end + dt.timedelta(seconds=float(c)) for c in cutoff_s]
            staleness = (secs - cutoff_s) * 1e6
            feature_age = staleness + rng.exponential(4 * 3600e6, size=n)
            cold = rng.uniform(size=n) < 0.03
            model_s = cutoff_s
        else:
            features_time = t
            staleness = np.zeros(n)
            feature_age = rng.exponential(3 * 3600e6, size=n)
            cold = rng.uniform(size=n) < 0.01
            model_s = (
                cutoff_s
                if kind == "stream"
                else (
                    np.zeros(n)
                    if kind == "static"
                    else np.maximum(secs - rng.exponential(600, size=n), 0)
                )
            )
        if kind == "static":
            model_s = -86400 * np.ones(n)
        feature_age = np.where(cold, np.nan, feature_age)
        model_time = [warm_end + dt.timedelta(seconds=float(m)) for m in model_s]
        version = (
            day.astype(int)
            if kind in ("batch", "stream")
            else (np.arange(n) if kind == "online" else np.zeros(n, int))
        )
        for i in range(n):
            rows.append(
                {
                    "event_id": 5000 + i,
                    "strategy": name,
                    "t": t[i],
                    "label_time": None if np.isnan(y[i]) else t[i] + dt.timedelta(minutes=30),
                    "y": None if np.isnan(y[i]) else float(y[i]),
                    "score": float(score[i]),
                    "pred": float(score[i] >= 0.5),
                    "model_version": int(version[i]),
                    "model_time": model_time[i],
                    "features_time": features_time[i],
                    "staleness_us": int(staleness[i]),
                    "feature_age_us": None if np.isnan(feature_age[i]) else int(feature_age[i]),
                    "model_age_us": int((secs[i] - model_s[i]) * 1e6),
                    "cold_start": bool(cold[i]),
                }
            )
    preds = pl.DataFrame(
        rows,
        schema={
            "event_id": pl.Int64,
            "strategy": pl.String,
            "t": pl.Datetime("us"),
            "label_time": pl.Datetime("us"),
            "y": pl.Float64,
            "score": pl.Float64,
            "pred": pl.Float64,
            "model_version": pl.Int32,
            "model_time": pl.Datetime("us"),
            "features_time": pl.Datetime("us"),
            "staleness_us": pl.Int64,
            "feature_age_us": pl.Int64,
            "model_age_us": pl.Int64,
            "cold_start": pl.Boolean,
        },
    )
    # Timings: single-row predicts on a 25 % sample (log-normal, stream slightly faster than
    # online), updates for online, retrains daily, batch score jobs daily.
    trow = []
    sample = np.flatnonzero(rng.uniform(size=n) < 0.25)
    for st in STRATEGIES:
        name, kind = st["name"], st["kind"]
        med_ms = {"batch": 0.4, "stream": 0.45, "online": 0.5, "static": 0.45}[kind]
        if kind == "batch":
            for d in range(DAYS):
                cnt = int(((secs // 86400) == d).sum())
                w = int(rng.lognormal(np.log(20e6), 0.2))
                trow.append(
                    (name, "score_job", w, int(w * 0.95), cnt, warm_end + dt.timedelta(days=d))
                )
        for i in sample:
            w = int(rng.lognormal(np.log(med_ms * 1e6), 0.35))
            trow.append((name, "predict", w, int(w * 0.9), 1, t[i]))
        if kind in ("batch", "stream"):
            for d in range(DAYS):
                w = int(rng.lognormal(np.log(150e6), 0.1))
                trow.append(
                    (
                        name,
                        "retrain",
                        w,
                        int(w * 0.97),
                        200 * (d + 1),
                        warm_end + dt.timedelta(days=d),
                    )
                )
        if kind == "online":
            for i in range(0, n, 3):
                w = int(rng.lognormal(np.log(0.3e6), 0.3))
                trow.append((name, "update", w, int(w * 0.9), 1, t[i]))
    timings = pl.DataFrame(
        trow,
        schema={
            "strategy": pl.String,
            "kind": pl.String,
            "wall_ns": pl.Int64,
            "cpu_ns": pl.Int64,
            "rows": pl.Int64,
            "t": pl.Datetime("us"),
        },
        orient="row",
    )
    names = [s["name"] for s in STRATEGIES]
    metrics = compute_metrics(
        preds, timings, task="binary", strategies=names, baseline="batch_daily", seed=0
    )
    manifest = {
        "rtml_version": "0.1.0",
        "created": "2024-03-08T00:00:00",
        "table": {
            "source": "synthetic (tests/data/make_run_small.py)",
            "rows": n + 40,
            "fingerprint": "synthetic-v1",
        },
        "roles": {"time": "ts", "label": "click", "key": "user_id", "label_time": None},
        "inferred": [],
        "task": "binary",
        "positive_class": True,
        "config": {
            "data": {"time": "ts", "label": "click", "key": "user_id", "warmup": "1d"},
            "model": {"preset": "sgd"},
            "strategy": STRATEGIES,
            "report": {
                "baseline": "batch_daily",
                "checks": ["stream.auc - batch_daily.auc >= 0.01"],
            },
        },
        "strategies": STRATEGIES,
        "baseline": "batch_daily",
        "model": {"spec": "preset:sgd", "repr": "Pipeline(SGDClassifier(loss='log_loss'))"},
        "warmup_end": warm_end.isoformat(),
        "scored_events": n,
        "versions": {
            "python": "3.11",
            "rtml": "0.1.0",
            "sklearn": "1.5",
            "polars": "1.10",
            "numpy": "2.0",
        },
        "timings": {"load": 0.1, "simulate": 3.2},
        "warnings": [],
        "options": {"timing_sample": 0.25, "jobs": 1},
    }
    if out.exists():
        shutil.rmtree(out)
    write_run_dir(out, manifest=manifest, predictions=preds, timings=timings, metrics=metrics)


if __name__ == "__main__":
    build(HERE / "run_small")
    print("wrote", HERE / "run_small")
