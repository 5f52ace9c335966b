"""The ``--check`` expression grammar, the named metrics it can use, and its evaluation.

A check is a comparison of two arithmetic expressions over named metrics and numbers, e.g.
``online.auc - batch.auc >= 0.01`` or ``stream.predict_p99_ms <= 20``. Several comparisons may
be joined with ``and``. Parsed by a small recursive-descent parser (never ``eval``)::

    check      := comparison ("and" comparison)*
    comparison := sum OP sum                      OP: >= <= > < == !=
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | NAME | AGG "(" REF ")" | "(" sum ")"
    NAME       := strategy "." metric             e.g. batch_daily.auc, stream.predict_p99_ms
    AGG        := "min" | "max" | "mean"
    REF        := a metric, or its trailing dotted parts   e.g. auc, stream.auc
    NUMBER     := 12, 0.01, 1e-3, 5%  (a trailing % divides by 100)

An aggregate covers every name that is ``REF`` or ends with ``.REF``: in a run, ``max(auc)`` is
the best strategy's AUC; in a sweep (names ``cell.strategy.metric``, e.g. ``c003.stream.auc``)
``min(stream.auc)`` is the worst cell's and ``min(auc)`` the worst of every cell and strategy.
A covered name without a value makes the check an ``error``, as a plain name does.

A check is bounded (:data:`MAX_CHECK_CHARS` characters, :data:`MAX_CHECK_TOKENS` tokens,
:data:`MAX_CHECK_DEPTH` levels of parentheses and unary minus): the parser and the evaluation
recurse, and an unbounded expression would overflow the stack; a longer one is a
:class:`~rtml_cli.errors.UsageError` that says the limit.

Names are resolved against :func:`named_metrics` (the metrics of a run flattened to
``strategy.metric``). An unknown name is a :class:`~rtml_cli.errors.UsageError` (exit 2) that
lists the known metrics; a known metric without a value (AUC with one class) makes that check an
``error`` whose status maps to :class:`~rtml_cli.errors.MetricError` (exit 3).

Examples
--------
>>> parse_check("online.auc - batch.auc >= 0.01").names()
['online.auc', 'batch.auc']
>>> evaluate_checks(["a.x * 2 > 1"], {"a.x": 0.6})[0].status
'pass'
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rtml_cli.errors import EXIT_CHECK_FAILED, EXIT_METRIC, EXIT_OK, UsageError, suggest

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>>=|<=|==|!=|>|<)"
    r"|(?P<sym>[-+*/()])"
    r")"
)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
#: Longest check expression accepted, in characters.
MAX_CHECK_CHARS = 2000
#: Most tokens (numbers, names, operators, parentheses) in one check.
MAX_CHECK_TOKENS = 256
#: Deepest nesting of parentheses and unary minus in one check.
MAX_CHECK_DEPTH = 32
GRAMMAR_HINT = (
    "A check compares metric expressions, e.g. 'online.auc - batch.auc >= 0.01' or "
    "'stream.predict_p99_ms <= 20' (names are strategy.metric; operators + - * /; "
    "comparisons >= <= > < == !=; min(M), max(M), mean(M) over every strategy (and sweep "
    "cell) with metric M; join several with 'and')."
)


class MissingValue(Exception):
    """A named metric exists but has no value; carries the reason."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} could not be computed: {reason}")
        self.name = name
        self.reason = reason


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Num:
    value: float

    def eval(self, env: Mapping[str, float | None], reasons: Mapping[str, str]) -> float:
        return self.value

    def text(self) -> str:
        return f"{self.value:g}"


@dataclass(frozen=True)
class Name:
    name: str

    def eval(self, env: Mapping[str, float | None], reasons: Mapping[str, str]) -> float:
        v = env[self.name]
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            raise MissingValue(self.name, reasons.get(self.name, "no value in this run"))
        return float(v)

    def text(self) -> str:
        return self.name


@dataclass(frozen=True)
class Neg:
    arg: Any

    def eval(self, env: Mapping[str, float | None], reasons: Mapping[str, str]) -> float:
        return -self.arg.eval(env, reasons)

    def text(self) -> str:
        return f"-{self.arg.text()}"


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Any
    right: Any

    def eval(self, env: Mapping[str, float | None], reasons: Mapping[str, str]) -> float:
        a, b = self.left.eval(env, reasons), self.right.eval(env, reasons)
        if self.op == "/" and b == 0:
            raise MissingValue(self.right.text(), "division by zero")
        return _ARITH[self.op](a, b)

    def text(self) -> str:
        return f"({self.left.text()} {self.op} {self.right.text()})"


#: Aggregates over every name a reference covers.
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "min": min,
    "max": max,
    "mean": lambda xs: sum(xs) / len(xs),
}


def covered(ref: str, env: Mapping[str, Any]) -> list[str]:
    """The names an aggregate's reference covers: ``ref`` itself and every ``*.ref``."""
    tail = "." + ref
    return [k for k in env if k == ref or k.endswith(tail)]


@dataclass(frozen=True)
class Agg:
    func: str
    ref: str

    def eval(self, env: Mapping[str, float | None], reasons: Mapping[str, str]) -> float:
        names = covered(self.ref, env)
        values = [Name(n).eval(env, reasons) for n in names]
        return AGGREGATES[self.func](values)

    def text(self) -> str:
        return f"{self.func}({self.ref})"


@dataclass(frozen=True)
class Comparison:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Check:
    """A parsed check: comparisons joined by ``and``."""

    source: str
    comparisons: tuple[Comparison, ...]

    def names(self) -> list[str]:
        """The metric names used, in order of first appearance (aggregates excluded)."""
        return [n for n in self._refs() if isinstance(n, str)]

    def aggregates(self) -> list[Agg]:
        """The aggregates used, in order of first appearance."""
        return [n for n in self._refs() if isinstance(n, Agg)]

    def _refs(self) -> list[Any]:
        out: list[Any] = []

        def walk(node: Any) -> None:
            if isinstance(node, Name):
                if node.name not in out:
                    out.append(node.name)
            elif isinstance(node, Agg):
                if node not in out:
                    out.append(node)
            elif isinstance(node, Neg):
                walk(node.arg)
            elif isinstance(node, BinOp):
                walk(node.left)
                walk(node.right)

        for c in self.comparisons:
            walk(c.left)
            walk(c.right)
        return out


# --------------------------------------------------------------------------- parser


def _shown(src: str) -> str:
    """The check as quoted in a message: long ones are cut."""
    return repr(src) if len(src) <= 80 else repr(src[:60]) + f" … ({len(src):,} characters)"


def _too_big(src: str, what: str, limit: str) -> UsageError:
    return UsageError(
        f"Check {_shown(src)} is {what}; the limit is {limit}. Split it into several --check "
        "options or simplify it."
    )


def _tokenize(src: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    src_r = src.rstrip()
    while pos < len(src_r):
        if len(tokens) >= MAX_CHECK_TOKENS:
            raise _too_big(src, "too long", f"{MAX_CHECK_TOKENS} tokens")
        m = _TOKEN.match(src_r, pos)
        if not m or m.end() == pos:
            bad = src_r[pos:].lstrip()[:1]
            col = len(src_r) - len(src_r[pos:].lstrip())
            raise UsageError(
                f"Check {src!r}: unexpected character {bad!r} at column {col + 1}. {GRAMMAR_HINT}"
            )
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokenize(src)
        self.i = 0
        self.depth = 0  # open parentheses and unary minus around the current position

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_CHECK_DEPTH:
            raise _too_big(self.src, "too deeply nested", f"{MAX_CHECK_DEPTH} levels")

    def _peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _fail(self, what: str) -> UsageError:
        tok = self._peek()
        where = f"at {tok[1]!r} (column {tok[2] + 1})" if tok else "at the end"
        return UsageError(f"Check {self.src!r}: expected {what} {where}. {GRAMMAR_HINT}")

    def parse(self) -> Check:
        comps = [self._comparison()]
        while (tok := self._peek()) is not None and tok[0] == "word" and tok[1].lower() == "and":
            self.i += 1
            comps.append(self._comparison())
        if self._peek() is not None:
            raise self._fail("'and' or the end of the check")
        return Check(self.src, tuple(comps))

    def _comparison(self) -> Comparison:
        left = self._sum()
        tok = self._peek()
        if tok is None or tok[0] != "op":
            raise self._fail("a comparison (>=, <=, >, <, ==, !=)")
        self.i += 1
        right = self._sum()
        return Comparison(tok[1], left, right)

    def _sum(self) -> Any:
        node = self._product()
        while (tok := self._peek()) is not None and tok[1] in ("+", "-"):
            self.i += 1
            node = BinOp(tok[1], node, self._product())
        return node

    def _product(self) -> Any:
        node = self._unary()
        while (tok := self._peek()) is not None and tok[1] in ("*", "/"):
            self.i += 1
            node = BinOp(tok[1], node, self._unary())
        return node

    def _unary(self) -> Any:
        tok = self._peek()
        if tok is not None and tok[1] == "-":
            self.i += 1
            self._nest()
            node = Neg(self._unary())
            self.depth -= 1
            return node
        return self._atom()

    def _atom(self) -> Any:
        tok = self._peek()
        if tok is None:
            raise self._fail("a number, a metric name or '('")
        kind, text, _ = tok
        if kind == "num":
            self.i += 1
            return Num(float(text[:-1]) / 100 if text.endswith("%") else float(text))
        if kind == "name":
            self.i += 1
            return Name(text)
        if text == "(":
            self.i += 1
            self._nest()
            node = self._sum()
            nxt = self._peek()
            if nxt is None or nxt[1] != ")":
                raise self._fail("')'")
            self.i += 1
            self.depth -= 1
            return node
        nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
        if kind == "word" and text.lower() in AGGREGATES and nxt is not None and nxt[1] == "(":
            self.i += 2
            ref = self._peek()
            if ref is None or ref[0] not in ("word", "name"):
                raise self._fail(f"a metric name inside {text}(...)")
            close = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
            if close is None or close[1] != ")":
                self.i += 1
                raise self._fail(f"')' closing {text}(")
            self.i += 2
            return Agg(text.lower(), ref[1])
        if kind == "word":
            raise UsageError(
                f"Check {self.src!r}: {text!r} is not a metric name; names are "
                f"strategy.metric, e.g. 'stream.auc'. {GRAMMAR_HINT}"
            )
        raise self._fail("a number, a metric name or '('")


def parse_check(src: str) -> Check:
    """Parse one check expression.

    Raises
    ------
    UsageError
        The expression does not follow the grammar (the message says where), or exceeds
        :data:`MAX_CHECK_CHARS`, :data:`MAX_CHECK_TOKENS` or :data:`MAX_CHECK_DEPTH`.
    """
    text = str(src)
    if not text.strip():
        raise UsageError(f"A check is empty. {GRAMMAR_HINT}")
    if len(text) > MAX_CHECK_CHARS:
        raise _too_big(text, "too long", f"{MAX_CHECK_CHARS:,} characters")
    return _Parser(text).parse()


# --------------------------------------------------------------------------- named metrics


def named_metrics(
    metrics: Mapping[str, Any], capacity: Mapping[str, Any] | None = None
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Flatten a ``metrics.json`` dict (and optional capacity results) to ``strategy.metric``.

    Names per strategy ``s``:

    - quality: ``s.auc``, ``s.accuracy``, ``s.log_loss``, ``s.f1``, ``s.brier`` (binary) or
      ``s.mae``, ``s.rmse``, ``s.r2``; ``s.n`` (labelled scored events);
    - difference to the baseline (non-baseline strategies): ``s.auc_diff``, ``s.auc_diff_low``,
      ``s.auc_diff_high`` (95 % bootstrap interval), same for every quality metric;
    - single-row predict latency: ``s.predict_p50_ms``, ``_p90_ms``, ``_p99_ms``, ``_p999_ms``,
      ``_max_ms``, ``_mean_ms``, and CPU ``s.predict_cpu_p99_ms`` …;
    - other call kinds: ``s.update_p99_ms``, ``s.retrain_p99_ms``, ``s.score_job_max_ms`` …,
      ``s.retrain_total_s``; throughput ``s.events_per_s``;
    - freshness: ``s.staleness_mean_s`` / ``_p50_s`` / ``_p90_s`` / ``_max_s``, the same for
      ``feature_age`` and ``model_age``; ``s.cold_start``;
    - cost (when the run has a ``cost`` section): ``s.cost_<key>``, nested keys joined by ``_``;
    - capacity (when computed): ``s.workers_needed``, ``s.e2e_p99_ms`` (end-to-end p99 latency
      with the reported worker count).

    Returns
    -------
    (values, reasons)
        ``values[name]`` is a float or None; ``reasons[name]`` says why a value is None.
    """
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}

    def put(name: str, value: Any, reason: str | None = None) -> None:
        values[name] = None if value is None else float(value)
        if value is None:
            reasons[name] = reason or "no value in this run"

    names = metrics.get("metric_names", [])
    for s in metrics.get("strategies", []):
        q = metrics.get("quality", {}).get(s, {})
        put(f"{s}.n", q.get("n"))
        for m in names:
            put(f"{s}.{m}", q.get(m), q.get("reasons", {}).get(m))
        diff = metrics.get("diff_to_baseline", {}).get(s)
        if diff is not None:
            for m in names:
                d = diff.get(m, {})
                r = d.get("reason")
                put(f"{s}.{m}_diff", d.get("estimate"), r)
                put(f"{s}.{m}_diff_low", d.get("low"), r)
                put(f"{s}.{m}_diff_high", d.get("high"), r)
        comp = metrics.get("compute", {}).get(s, {})
        single = comp.get("predict_single_row")
        for key, pct in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"),
                         ("max", "max"), ("mean", "mean")):  # fmt: skip
            why = f"strategy '{s}' has no timed single-row predict calls"
            put(f"{s}.predict_{key}_ms", (single or {}).get("wall_ms", {}).get(pct), why)
            put(f"{s}.predict_cpu_{key}_ms", (single or {}).get("cpu_ms", {}).get(pct), why)
            for kind in ("update", "retrain", "score_job", "feature"):
                calls = comp.get("kinds", {}).get(kind)
                why_k = f"strategy '{s}' has no timed {kind} calls"
                put(f"{s}.{kind}_{key}_ms", (calls or {}).get("wall_ms", {}).get(pct), why_k)
        for kind in ("predict", "update", "retrain", "score_job", "feature"):
            calls = comp.get("kinds", {}).get(kind)
            put(f"{s}.{kind}_total_s", (calls or {}).get("wall_total_s"),
                f"strategy '{s}' has no timed {kind} calls")  # fmt: skip
        put(f"{s}.events_per_s", comp.get("events_per_s"), "no timed calls")
        fr = metrics.get("freshness", {}).get(s, {})
        for what in ("staleness", "feature_age", "model_age"):
            summ = fr.get(f"{what}_s", {})
            for stat in ("mean", "p50", "p90", "max"):
                put(f"{s}.{what}_{stat}_s", summ.get(stat), f"no {what} values")
        put(f"{s}.cold_start", fr.get("cold_start"))
        cost = metrics.get("cost")
        _put_cost(put, f"{s}.cost", cost.get(s) if isinstance(cost, Mapping) else None)
    for s, cap in (capacity or {}).items():
        reason = cap.get("reason") or "no capacity result"
        put(f"{s}.workers_needed", cap.get("workers_needed"), reason)
        chosen = cap.get("chosen")
        put(f"{s}.e2e_p99_ms", (chosen or {}).get("latency_ms", {}).get("p99"), reason)
    return values, reasons


def _put_cost(put: Callable[..., None], prefix: str, value: Any) -> None:
    """Every number of a ``cost`` section, nested keys joined with ``_``."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _put_cost(put, f"{prefix}_{k}", v)
    elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        put(prefix, value, "not measured in this run")


# --------------------------------------------------------------------------- evaluation


@dataclass
class CheckResult:
    """Outcome of one check: ``status`` is ``pass``, ``fail`` or ``error`` (no value)."""

    source: str
    status: str
    values: dict[str, float] = field(default_factory=dict)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.source, "status": self.status, "values": self.values,
                "detail": self.detail}  # fmt: skip


def _known_list(known: Sequence[str]) -> str:
    shown = ", ".join(sorted(known))
    return shown if len(shown) < 4000 else shown[:4000] + " …"


def resolve(check: Check, env: Mapping[str, Any]) -> None:
    """Raise UsageError naming any unknown metric and listing the known ones."""
    for agg in check.aggregates():
        if not covered(agg.ref, env):
            metrics = sorted({k.rsplit(".", 1)[-1] for k in env})
            last = agg.ref.rsplit(".", 1)[-1]
            raise UsageError(
                f"Check {check.source!r}: {agg.text()} covers no metric.{suggest(last, metrics)} "
                f"Known metrics: {_known_list(metrics)}."
            )
    for name in check.names():
        if name not in env:
            strategies = sorted({k.split(".", 1)[0] for k in env})
            strat = name.split(".", 1)[0]
            in_cells = sorted({k.split(".")[0] for k in env if k.split(".")[1:2] == [strat]})
            if strat not in strategies and in_cells:  # a sweep: names are cell.strategy.metric
                raise UsageError(
                    f"Check {check.source!r}: '{name}' names a strategy without its cell; in a "
                    f"sweep a name is cell.strategy.metric (e.g. '{in_cells[0]}.{name}'), or "
                    f"aggregate over the cells: min({name}), max({name}), mean({name})."
                )
            if strat not in strategies:
                hint = suggest(strat, strategies)
                raise UsageError(
                    f"Check {check.source!r}: unknown strategy '{strat}' in '{name}'.{hint} "
                    f"Strategies in this run: {', '.join(strategies)}."
                )
            metric = name.split(".", 1)[1]
            same = sorted(k.split(".", 1)[1] for k in env if k.startswith(strat + "."))
            raise UsageError(
                f"Check {check.source!r}: unknown metric '{name}'.{suggest(metric, same)} "
                f"Known metrics for '{strat}': {_known_list(same)}."
            )


def evaluate_checks(
    sources: Sequence[str],
    values: Mapping[str, float | None],
    reasons: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Parse, resolve and evaluate every check.

    Raises
    ------
    UsageError
        A check does not parse or names an unknown metric (before any is evaluated).
    """
    reasons = reasons or {}
    parsed = [parse_check(s) for s in sources]
    for c in parsed:
        resolve(c, values)
    results = []
    for c in parsed:
        used: dict[str, float] = {}
        for n in c.names():
            v = values[n]
            if v is not None and math.isfinite(v):
                used[n] = float(v)
        for agg in c.aggregates():
            try:
                used[agg.text()] = agg.eval(values, reasons)
            except MissingValue:
                pass
        try:
            ok = True
            parts = []
            for comp in c.comparisons:
                a = comp.left.eval(values, reasons)
                b = comp.right.eval(values, reasons)
                holds = _COMPARE[comp.op](a, b)
                ok = ok and holds
                parts.append(f"{_fmt(a)} {comp.op} {_fmt(b)}")
            results.append(
                CheckResult(c.source, "pass" if ok else "fail", used, " and ".join(parts))
            )
        except MissingValue as exc:
            results.append(CheckResult(c.source, "error", used, str(exc)))
    return results


def exit_code(results: Sequence[CheckResult]) -> int:
    """3 if any check could not be computed, else 1 if any failed, else 0.

    A missing value wins over a failure: the gate cannot tell whether the migration is safe.
    """
    if any(r.status == "error" for r in results):
        return EXIT_METRIC
    if any(r.status == "fail" for r in results):
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _fmt(x: float) -> str:
    return f"{x:.6g}"
