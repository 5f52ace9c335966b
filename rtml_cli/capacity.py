"""Capacity: the end-to-end latency a streaming deployment would see with N workers.

The historical arrival process (the event times of the scored events, optionally compressed by a
traffic multiplier) is fed to a FIFO queue with N identical workers whose service times are drawn
(seeded, with replacement) from the measured single-row predict calls of the run. The simulation
is exact for that model (an event-driven G/G/N queue): one worker uses the vectorized Lindley
recursion, several workers a heap of next-free times. It reports latency percentiles per N, the
minimum N whose p99 meets an SLO, and the busiest minute and hour, because averages hide the peaks
that queues are sized for.

Examples
--------
>>> import numpy as np
>>> fifo_latency(np.array([0, 1, 2]), np.array([2, 2, 2]), workers=1).tolist()
[2, 3, 4]
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np

from rtml_cli.errors import UsageError

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
MAX_WORKERS = 1024


def fifo_latency(arrivals: np.ndarray, service: np.ndarray, *, workers: int) -> np.ndarray:
    """End-to-end latency (wait + service) of each job in a FIFO queue with ``workers`` servers.

    Parameters
    ----------
    arrivals : arrival times, non-decreasing (any unit).
    service : service time of each job (same unit, same length).
    workers : number of identical servers (>= 1).

    Returns
    -------
    numpy.ndarray
        Completion time minus arrival time, per job, in the input unit.
    """
    a = np.asarray(arrivals, dtype=np.float64)
    s = np.asarray(service, dtype=np.float64)
    if a.shape != s.shape:
        raise UsageError("arrivals and service times must have the same length.")
    if workers < 1:
        raise UsageError(f"The number of workers must be >= 1. Got {workers} instead.")
    if a.size == 0:
        return a.copy()
    if workers == 1:
        # Lindley, closed form: d_n = C_n + max_{k<=n}(a_k - C_{k-1}), C = cumsum(s).
        c = np.cumsum(s)
        c_prev = c - s
        done = c + np.maximum.accumulate(a - c_prev)
        out = done - a
    elif workers >= a.size:
        out = s.copy()
    else:
        free = [0.0] * workers  # next-free time of each worker; FIFO takes the earliest
        heapq.heapify(free)
        out = np.empty_like(a)
        al, sl = a.tolist(), s.tolist()
        for i in range(len(al)):
            start = al[i] if al[i] > free[0] else free[0]
            end = start + sl[i]
            heapq.heapreplace(free, end)
            out[i] = end - al[i]
    if np.issubdtype(np.asarray(arrivals).dtype, np.integer) and np.issubdtype(
        np.asarray(service).dtype, np.integer
    ):
        return np.rint(out).astype(np.int64)
    return out


def scale_arrivals(arrivals_us: np.ndarray, traffic: float) -> np.ndarray:
    """Compress inter-arrival times by ``traffic`` (×10 traffic = gaps / 10), keeping the shape."""
    if not traffic > 0:
        raise UsageError(f"The traffic multiplier must be > 0, e.g. '10x'. Got {traffic!r}.")
    a = np.sort(np.asarray(arrivals_us, dtype=np.float64))
    if a.size == 0:
        return a
    return a[0] + (a - a[0]) / traffic


def parse_traffic(text: str | float) -> float:
    """Parse a traffic multiplier such as ``"10x"``, ``"2.5"`` or ``"x3"``."""
    s = str(text).strip().lower().replace("x", "", 1) if isinstance(text, str) else text
    try:
        value = float(s)
    except ValueError:
        raise UsageError(
            "The traffic multiplier must be a positive number such as '10x' or '2.5'. "
            f"Got {text!r}."
        ) from None
    if not value > 0 or not math.isfinite(value):
        raise UsageError(f"The traffic multiplier must be > 0, e.g. '10x'. Got {text!r}.")
    return value


def _pcts(lat_ms: np.ndarray) -> dict[str, float | None]:
    if lat_ms.size == 0:
        return {**{k: None for k in PERCENTILES}, "max": None, "mean": None}
    qs = np.percentile(lat_ms, list(PERCENTILES.values()))
    out: dict[str, float | None] = {k: float(q) for k, q in zip(PERCENTILES, qs, strict=True)}
    out["max"] = float(lat_ms.max())
    out["mean"] = float(lat_ms.mean())
    return out


def _peak(arrivals_us: np.ndarray, width_us: int) -> tuple[int, int]:
    """(start µs, count) of the busiest epoch-aligned window of ``width_us``."""
    win = (arrivals_us // width_us).astype(np.int64)
    uniq, counts = np.unique(win, return_counts=True)
    i = int(np.argmax(counts))
    return int(uniq[i]) * width_us, int(counts[i])


def simulate_capacity(
    arrivals_us: np.ndarray,
    service_us: np.ndarray,
    *,
    traffic: float = 1.0,
    slo_ms: float = 50.0,
    workers: list[int] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Latency per worker count, workers needed for an SLO at p99, and peak windows.

    Parameters
    ----------
    arrivals_us : event times (µs since the epoch) of the scored events.
    service_us : measured single-row service times (µs) to sample from.
    traffic : multiplier of the arrival rate (inter-arrival times are divided by it).
    slo_ms : end-to-end latency objective at p99, in milliseconds.
    workers : worker counts to report (the needed count is always added).
    seed : seed of the service-time sampling.

    Returns
    -------
    dict
        ``{"traffic", "slo_ms", "arrivals", "span_s", "rate_per_s", "service_ms" {pcts},
        "utilization_1" (offered load in workers), "workers_needed" (int | None),
        "by_workers": [{"workers", "latency_ms" {pcts}, "utilization", "peak_hour_p99_ms"}],
        "peak_minute" {"start_us", "end_us", "events", "rate_per_s", "x_mean"},
        "peak_hour" {...}, "reason" (str | None)}``. Latencies are in milliseconds. Peak
        windows are clock minutes and hours of the original timeline (``arrivals_us``, not the
        compressed one); their ``rate_per_s`` is at ``traffic`` and ``peak_hour_p99_ms`` is the
        p99 of the events of that hour.
    """
    a = scale_arrivals(arrivals_us, traffic)
    svc = np.asarray(service_us, dtype=np.float64)
    svc = svc[np.isfinite(svc) & (svc >= 0)]
    out: dict[str, Any] = {
        "traffic": float(traffic),
        "slo_ms": float(slo_ms),
        "arrivals": int(a.size),
        "service_samples": int(svc.size),
        "workers_needed": None,
        "by_workers": [],
        "reason": None,
    }
    if a.size == 0 or svc.size == 0:
        out["reason"] = (
            "no scored events" if a.size == 0 else "no single-row predict calls were timed"
        )
        return out
    rng = np.random.default_rng(seed)
    s = rng.choice(svc, size=a.size, replace=True)
    span_us = float(a[-1] - a[0])
    rate = a.size / (span_us / 1e6) if span_us > 0 else math.inf
    load = float(s.sum() / span_us) if span_us > 0 else math.inf
    out.update(
        span_s=span_us / 1e6,
        rate_per_s=_fin(rate),
        service_ms=_pcts(svc / 1e3),
        offered_load=_fin(load),
    )
    # Peaks are found on the table's own timeline: with --traffic the simulated arrivals are
    # compressed, but the busiest hour is still a clock hour of the data (e.g. 14:00-15:00),
    # whose events arrive `traffic` times denser. Scaling keeps the order, so event i of the
    # sorted original is event i of the simulation.
    orig = np.sort(np.asarray(arrivals_us, dtype=np.float64)).astype(np.int64)
    peaks: dict[str, dict[str, Any]] = {}
    for name, width in (("peak_minute", 60_000_000), ("peak_hour", 3_600_000_000)):
        start, count = _peak(orig, width)
        prate = count * float(traffic) / (width / 1e6)
        peaks[name] = {
            "start_us": start,
            "end_us": start + width,
            "events": count,
            "rate_per_s": prate,
            "x_mean": _fin(prate / rate) if math.isfinite(rate) and rate > 0 else None,
        }
    out.update(peaks)
    hour_start = int(peaks["peak_hour"]["start_us"])
    in_hour = (orig >= hour_start) & (orig < hour_start + 3_600_000_000)

    cache: dict[int, np.ndarray] = {}

    def lat(n: int) -> np.ndarray:
        if n not in cache:
            cache[n] = fifo_latency(a, s, workers=n) / 1e3
        return cache[n]

    def p99(n: int) -> float:
        return float(np.percentile(lat(n), 99))

    slo_ok = float(np.percentile(s, 99)) / 1e3 <= slo_ms
    if slo_ok:
        # p99 is non-increasing in N for FIFO: double until it holds, then bisect.
        bad, good = 0, 1
        while p99(good) > slo_ms and good < MAX_WORKERS:
            bad, good = good, min(good * 2, MAX_WORKERS)
        if p99(good) <= slo_ms:
            while good - bad > 1:
                mid = (bad + good) // 2
                if p99(mid) <= slo_ms:
                    good = mid
                else:
                    bad = mid
            out["workers_needed"] = good
        else:
            out["reason"] = f"more than {MAX_WORKERS} workers would be needed"
    else:
        out["reason"] = (
            f"the service time alone exceeds the SLO at p99 ({np.percentile(s, 99) / 1e3:.3g} ms "
            f"> {slo_ms:g} ms): no number of workers meets it"
        )
    need = out["workers_needed"]
    # around the answer: one worker, the last count that fails, the count that meets the SLO
    base = {1, need - 1, need} if need else {1, 2, 4}
    counts = sorted(n for n in {*base, *(workers or [])} if n != 0)
    for n in counts:
        if n < 1:
            raise UsageError(f"The number of workers must be >= 1. Got {n} instead.")
        lt = lat(n)
        out["by_workers"].append(
            {
                "workers": n,
                "latency_ms": _pcts(lt),
                "utilization": _fin(load / n),
                "peak_hour_p99_ms": float(np.percentile(lt[in_hour], 99))
                if in_hour.any()
                else None,
                "meets_slo": bool(np.percentile(lt, 99) <= slo_ms),
            }
        )
    return out


def _fin(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
