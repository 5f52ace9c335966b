"""``rtml.toml`` loading and validation, and the compact ``--strategies`` form (README: Configuration).

Configuration objects are dumb containers; :func:`build_config` validates everything at once
and every error names the key, the value and what is allowed. CLI flags override the file.

Examples
--------
>>> cfg = build_config({"strategy": [{"name": "b", "kind": "batch", "retrain_every": "1h"}]})
>>> cfg.strategies[0].retrain_every_us
3600000000
>>> [s.name for s in parse_strategies("batch:1d,stream,online:32")]
['batch', 'stream', 'online']
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtml_cli.durations import format_duration, parse_duration
from rtml_cli.errors import ConfigError, RtmlError, suggest
from rtml_cli.features_spec import FEATURE_TABLE_KEYS, CalendarSpec, FeatureSpec, check_unique_names
from rtml_cli.io import Roles
from rtml_cli.relevance import DEFAULT_MIN_EFFECT, REFERENCE_NAMES, parse_min_effect

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10 only; tomli is a conditional dependency
    import tomli as tomllib

KINDS = ("batch", "stream", "online", "static")
DEFAULT_STRATEGIES = "batch:1d,stream:1d,online:1"
DEFAULT_WARMUP = 0.2
DAY_US = 86_400_000_000

_DATA_KEYS = {
    "time",
    "label",
    "key",
    "label_time",
    "label_delay",
    "inputs",
    "request_inputs",
    "features",
    "request_features",
    "ignore",
    "warmup",
    "time_unit",
    "time_format",
    "calendar",
}
_MODEL_KEYS = {"preset", "estimator", "params", "factory"}
_STRATEGY_KEYS = {"name", "kind", "retrain_every", "train_window", "update_every"}
_FEATURE_KEYS = set(FEATURE_TABLE_KEYS)
_REPORT_KEYS = {"baseline", "checks", "bucket", "min_effect"}
_TOP_KEYS = {"data", "model", "strategy", "feature", "report"}
#: ``[data]`` keys naming the model's input columns, and the older names still accepted. The
#: model's inputs are not "features": in rtml a feature is a windowed aggregate or calendar part.
_INPUT_KEY_ALIASES = {"inputs": "features", "request_inputs": "request_features"}


@dataclasses.dataclass
class StrategySpec:
    """One deployment strategy to simulate.

    Attributes
    ----------
    name : unique name (used in reports and ``--check`` expressions).
    kind : ``batch`` | ``stream`` | ``online`` | ``static``.
    retrain_every_us : retrain period for ``batch``/``stream`` (calendar grid since the epoch).
    train_window_us : only rows with ``t >= cutoff - window`` train a model; ``None`` = all.
    update_every : ``online`` only: ``partial_fit`` after every this many labels.
    """

    name: str
    kind: str
    retrain_every_us: int | None = None
    train_window_us: int | None = None
    update_every: int = 1

    def params(self) -> dict[str, Any]:
        """JSON-able description (for the manifest)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind in ("batch", "stream"):
            out["retrain_every"] = format_duration(self.retrain_every_us or 0)
        out["train_window"] = (
            "all" if self.train_window_us is None else format_duration(self.train_window_us)
        )
        if self.kind == "online":
            out["update_every"] = self.update_every
        return out


@dataclasses.dataclass
class ModelSpec:
    """How to build the model: exactly one of ``preset``, ``estimator`` (+ ``params``), ``factory``."""

    preset: str | None = None
    estimator: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    factory: str | None = None

    def describe(self) -> str:
        """Short human text, e.g. ``preset 'sgd'``."""
        if self.estimator:
            return f"{self.estimator}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"
        if self.factory:
            return f"factory {self.factory}"
        return f"preset '{self.preset or 'default'}'"


@dataclasses.dataclass
class CompareConfig:
    """Everything ``rtml compare`` needs, resolved from ``rtml.toml`` and flags."""

    roles: Roles = dataclasses.field(default_factory=Roles)
    label_delay_us: int | None = None
    warmup: str | float = DEFAULT_WARMUP
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    strategies: list[StrategySpec] = dataclasses.field(default_factory=list)
    #: windowed features (``[[feature]]`` tables, then ``--feature`` flags); an entry without
    #: ``key`` is resolved to the table's entity key when the table is read
    features: list[FeatureSpec] = dataclasses.field(default_factory=list)
    #: request-time calendar parts of the event time ("hour", "dow"), known to every strategy
    calendar: list[str] = dataclasses.field(default_factory=list)
    baseline: str | None = None
    checks: list[str] = dataclasses.field(default_factory=list)
    bucket: str | None = None
    #: the smallest difference that matters per metric (relevance.parse_min_effect)
    min_effect: dict[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_MIN_EFFECT))
    source: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The resolved configuration (for ``manifest.json``)."""
        return {
            "roles": dataclasses.asdict(self.roles),
            "label_delay_us": self.label_delay_us,
            "warmup": self.warmup,
            "model": dataclasses.asdict(self.model),
            "strategies": [s.params() for s in self.strategies],
            "features": [f.manifest_entry() for f in self.features],
            "calendar": list(self.calendar),
            "baseline": self.baseline,
            "checks": list(self.checks),
            "bucket": self.bucket,
            "min_effect": dict(self.min_effect),
            "source": self.source,
        }


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict; a missing or malformed file is a :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{path}' not found. Check the path given to --config.")
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file '{path}' is not valid TOML: {exc}. Fix the syntax."
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file '{path}' is not UTF-8 text ({exc.reason} at byte {exc.start}). "
            "Save it as UTF-8."
        ) from None
    except RecursionError:  # the parser recurses once per nesting level
        raise ConfigError(
            f"config file '{path}' nests arrays or tables too deeply for rtml to read. Flatten it."
        ) from None


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for k in table:
        if k not in allowed:
            raise ConfigError(
                f"unknown key '{k}' in {where}.{suggest(k, allowed)} "
                f"Allowed keys: {', '.join(sorted(allowed))}."
            )


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string. Got {value!r}.")
    return value


def _str_list(value: Any, where: str, what: str = "column names") -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of {what}. Got {value!r}.")
    return list(value)


def _duration(value: Any, where: str) -> int:
    try:
        us = parse_duration(value, what=where)
    except RtmlError as exc:
        raise ConfigError(str(exc)) from None
    return us


def parse_warmup(value: Any, where: str = "[data] warmup") -> str | float:
    """Validate a warm-up: a duration (``"7d"``) or a fraction in (0, 1)."""
    if isinstance(value, bool):
        raise ConfigError(
            f"{where} must be a duration such as '7d' or a fraction such as 0.1. Got {value!r}."
        )
    if isinstance(value, str) and value.strip().endswith("%") and _is_number(value.strip()[:-1]):
        value = float(value.strip()[:-1]) / 100  # "20%" reads as the fraction 0.2
    if isinstance(value, (int, float)) or (isinstance(value, str) and _is_number(value)):
        f = float(value)
        if not 0.0 < f < 1.0:
            raise ConfigError(
                f"{where} as a number is a fraction of the events and must be in (0, 1). Got "
                f"{value!r}; write a duration such as '7d' for a time span."
            )
        return f
    try:
        _duration(value, where)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc} A fraction of the events such as 0.2 (or 20%) works too."
        ) from None
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _strategy(entry: Any, i: int) -> StrategySpec:
    where = f"[[strategy]] #{i + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table with name and kind. Got {entry!r}.")
    _check_keys(entry, _STRATEGY_KEYS, where)
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ConfigError(
            f"{where}: unknown kind {kind!r}.{suggest(str(kind), KINDS)} "
            f"Allowed kinds: {', '.join(KINDS)}."
        )
    name = _str(entry.get("name", kind), f"{where} name")
    spec = StrategySpec(name=name, kind=kind)
    if kind in ("batch", "stream"):
        spec.retrain_every_us = _duration(
            entry.get("retrain_every", "1d"), f"{where} retrain_every"
        )
        if spec.retrain_every_us <= 0:
            raise ConfigError(
                f"{where} retrain_every must be > 0. Got {entry.get('retrain_every')!r}."
            )
    elif "retrain_every" in entry:
        raise ConfigError(
            f"{where}: retrain_every applies to batch and stream only, not {kind}. Remove it."
        )
    tw = entry.get("train_window", "all")
    if tw != "all":
        spec.train_window_us = _duration(tw, f"{where} train_window")
        if spec.train_window_us <= 0:
            raise ConfigError(f"{where} train_window must be 'all' or a duration > 0. Got {tw!r}.")
    if "update_every" in entry:
        if kind != "online":
            raise ConfigError(
                f"{where}: update_every applies to online only, not {kind}. Remove it."
            )
        ue = entry["update_every"]
        if isinstance(ue, bool) or not isinstance(ue, int) or ue < 1:
            raise ConfigError(f"{where} update_every must be an integer >= 1. Got {ue!r}.")
        spec.update_every = ue
    return spec


def parse_strategies(text: str) -> list[StrategySpec]:
    """Parse the compact form ``kind[:param[:window]],...``.

    ``batch:1d`` / ``stream:1h`` (retrain period, default 1d; optional third part = train
    window), ``online:32`` (update_every, default 1), ``static``. A name is the kind when that
    kind appears once, else ``kind_param`` (``batch_1d``, ``batch_1h``). ``name=kind:param``
    names it explicitly.
    """
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise ConfigError(f"--strategies is empty. Give e.g. '{DEFAULT_STRATEGIES}'.")
    parsed: list[tuple[str | None, str, list[str]]] = []
    for item in items:
        name = None
        if "=" in item:
            name, item = (s.strip() for s in item.split("=", 1))
        kind, *params = item.split(":")
        if kind not in KINDS:
            raise ConfigError(
                f"--strategies: unknown kind {kind!r} in {item!r}.{suggest(kind, KINDS)} "
                f"Allowed kinds: {', '.join(KINDS)}; e.g. '{DEFAULT_STRATEGIES}'."
            )
        parsed.append((name, kind, params))
    kinds = [k for _, k, _ in parsed]
    specs = []
    for i, (name, kind, params) in enumerate(parsed):
        entry: dict[str, Any] = {"kind": kind}
        if kind in ("batch", "stream"):
            if params:
                entry["retrain_every"] = params[0]
            if len(params) > 1:
                entry["train_window"] = params[1]
        elif kind == "online" and params:
            try:
                entry["update_every"] = int(params[0])
            except ValueError:
                raise ConfigError(
                    f"--strategies: online:{params[0]} — update_every must be an integer >= 1."
                ) from None
        elif params:
            raise ConfigError(
                f"--strategies: {kind} takes no parameter. Got {':'.join([kind, *params])!r}."
            )
        if name is None:
            name = kind if kinds.count(kind) == 1 else f"{kind}_{params[0] if params else i}"
        entry["name"] = name
        specs.append(_strategy(entry, i))
    return specs


def build_config(
    raw: dict[str, Any] | None = None,
    *,
    source: str | None = None,
    roles: Roles | None = None,
    label_delay: str | None = None,
    warmup: str | None = None,
    model: str | None = None,
    strategies: str | None = None,
    baseline: str | None = None,
    features: Sequence[str] = (),
    calendar: Sequence[str] | None = None,
    min_effect: Sequence[str] | None = None,
) -> CompareConfig:
    """Validate a parsed ``rtml.toml`` (``raw``) and apply flag overrides.

    Parameters
    ----------
    raw : the parsed TOML (``{}`` for zero config).
    source : where ``raw`` came from, for messages.
    roles : roles given by flags; non-``None`` fields override ``[data]``.
    label_delay, warmup, model, strategies, baseline : flag values (``None`` = not given).
        ``model`` is a preset name, ``module:Class`` or ``file.py:factory``.
    features : ``--feature`` flags in the compact form ``KEY:COLUMN:AGG:WINDOW[:NAME]``
        (an empty KEY aggregates over the whole table), added to the ``[[feature]]`` entries.
    calendar : ``--calendar`` parts (``hour``, ``dow``); replaces ``[data] calendar``.
    min_effect : ``--min-effect`` entries (``auc=0.01``), over ``[report] min_effect``.

    Raises
    ------
    ConfigError
        Unknown keys (with the closest allowed name), bad values, duplicate strategy names,
        a baseline that names no strategy.
    """
    raw = dict(raw or {})
    where = f" of {source}" if source else ""
    _check_keys(raw, _TOP_KEYS, f"the top level{where}")
    cfg = CompareConfig(source=source)

    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise ConfigError(f"[data]{where} must be a table.")
    _check_keys(data, _DATA_KEYS, f"[data]{where}")
    r = Roles()
    for k in ("time", "label", "key", "label_time", "time_unit", "time_format"):
        if k in data:
            setattr(r, k, _str(data[k], f"[data] {k}"))
    inputs = _input_columns(data, "inputs")
    if inputs is not None:
        r.features = inputs
    request_inputs = _input_columns(data, "request_inputs")
    if request_inputs is not None:
        r.request_features = request_inputs
    if "ignore" in data:
        r.ignore = _str_list(data["ignore"], "[data] ignore")
    if roles is not None:
        for f in dataclasses.fields(Roles):
            v = getattr(roles, f.name)
            if v is not None and v != []:
                setattr(r, f.name, v)
    cfg.roles = r
    delay = label_delay if label_delay is not None else data.get("label_delay")
    if delay is not None:
        cfg.label_delay_us = _duration(delay, "label_delay (--label-delay)")
    cfg.warmup = (
        parse_warmup(warmup, "--warmup")
        if warmup is not None
        else parse_warmup(data.get("warmup", DEFAULT_WARMUP))
    )

    m = raw.get("model", {})
    if not isinstance(m, dict):
        raise ConfigError(f"[model]{where} must be a table.")
    _check_keys(m, _MODEL_KEYS, f"[model]{where}")
    for k in ("preset", "estimator", "factory"):
        if k in m:
            _str(m[k], f"[model] {k}{where}")
    params = m.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(
            f"[model] params{where} must be a table of keyword arguments, e.g. "
            f'params = {{ loss = "log_loss" }}. Got {params!r}.'
        )
    ms = ModelSpec(
        preset=m.get("preset"),
        estimator=m.get("estimator"),
        factory=m.get("factory"),
        params=dict(params),
    )
    if model is not None:
        ms = model_spec_from_text(model)
    given = [k for k in ("preset", "estimator", "factory") if getattr(ms, k)]
    if len(given) > 1:
        raise ConfigError(
            f"[model] sets {' and '.join(given)}; give exactly one of preset, estimator or factory."
        )
    if ms.params and not ms.estimator:
        raise ConfigError("[model] params apply to 'estimator' only; remove them or set estimator.")
    cfg.model = ms

    if strategies is not None:
        cfg.strategies = parse_strategies(strategies)
    elif "strategy" in raw:
        entries = raw["strategy"]
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"[[strategy]]{where} must be one or more tables.")
        cfg.strategies = [_strategy(e, i) for i, e in enumerate(entries)]
    else:
        cfg.strategies = parse_strategies(DEFAULT_STRATEGIES)
        cfg.notes.append(f"strategies: {DEFAULT_STRATEGIES} (default; pass --strategies to change)")
    names = [s.name for s in cfg.strategies]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(
            f"strategy names must be unique; repeated: {', '.join(sorted(dup))}. Rename them."
        )
    taken = sorted(set(names) & set(REFERENCE_NAMES))
    if taken:
        raise ConfigError(
            f"strategy name '{taken[0]}' is reserved for the naive reference every run scores "
            f"({' and '.join(REFERENCE_NAMES)}); give the strategy another name."
        )

    for i, f in enumerate(raw.get("feature", []) or []):
        fw = f"[[feature]] #{i + 1}"
        if not isinstance(f, dict):
            raise ConfigError(f"{fw} must be a table.")
        _check_keys(f, _FEATURE_KEYS, fw)
        for k in ("name", "column", "agg", "window"):
            if k not in f:
                raise ConfigError(f"{fw} is missing '{k}'. Required: name, column, agg, window.")
        _duration(f["window"], f"{fw} window")
        cfg.features.append(FeatureSpec.from_config(f, where=fw))

    for text in features:
        if ":" not in text:
            raise ConfigError(
                f"--feature {text!r} is not of the form KEY:COLUMN:AGG:WINDOW[:NAME], e.g. "
                "'user_id:click:mean:1h' or 'user_id:*:count:5m'. Calendar parts go in --calendar."
            )
        cfg.features.append(FeatureSpec.parse(text))
    parts = (
        calendar if calendar is not None else _str_list(data.get("calendar", []), "[data] calendar")
    )
    cfg.calendar = [CalendarSpec.parse(p).part for p in parts]
    check_unique_names(cfg.features)

    rep = raw.get("report", {})
    if not isinstance(rep, dict):
        raise ConfigError(f"[report]{where} must be a table.")
    _check_keys(rep, _REPORT_KEYS, f"[report]{where}")
    cfg.checks = _str_list(rep.get("checks", []), "[report] checks", "check expressions")
    cfg.bucket = rep.get("bucket")
    table_effect = rep.get("min_effect")
    if table_effect is not None and not isinstance(table_effect, dict):
        raise ConfigError(
            f'[report] min_effect{where} must be a table such as {{ auc = 0.005, mae = "1%" }}.'
        )
    cfg.min_effect = parse_min_effect(table_effect, source=f"[report] min_effect{where}")
    if min_effect:
        cfg.min_effect = parse_min_effect(min_effect, source="--min-effect", base=cfg.min_effect)
    if cfg.bucket is not None:
        _duration(cfg.bucket, "[report] bucket")
    cfg.baseline = baseline if baseline is not None else rep.get("baseline")
    if baseline is None and strategies is not None and cfg.baseline not in (None, *names):
        # --strategies replaced the file's strategies: its baseline may name none of them
        cfg.notes.append(
            f"baseline: '{names[0]}' ([report] baseline '{cfg.baseline}' is not among --strategies)"
        )
        cfg.baseline = None
    if cfg.baseline is None:
        cfg.baseline = names[0]
    elif cfg.baseline not in names:
        raise ConfigError(
            f"baseline '{cfg.baseline}' is not a strategy.{suggest(cfg.baseline, names)} "
            f"Strategies are: {', '.join(names)}."
        )
    return cfg


def _input_columns(data: dict[str, Any], key: str) -> list[str] | None:
    """``[data] inputs`` / ``request_inputs`` (or their older names), ``None`` when absent."""
    old = _INPUT_KEY_ALIASES[key]
    if key in data and old in data:
        raise ConfigError(
            f"[data] sets both '{key}' and '{old}' (its older name); keep only '{key}'."
        )
    if key in data:
        return _str_list(data[key], f"[data] {key}")
    if old in data:
        return _str_list(data[old], f"[data] {old}")
    return None


def model_spec_from_text(text: str) -> ModelSpec:
    """``sgd`` → preset; ``pkg.mod:Class`` → estimator; ``path/model.py:factory`` → factory."""
    text = text.strip()
    if ":" not in text:
        return ModelSpec(preset=text)
    left = text.split(":", 1)[0]
    if left.endswith(".py"):
        return ModelSpec(factory=text)
    return ModelSpec(estimator=text)


def find_config(table: str | Path) -> Path | None:
    """The ``rtml.toml`` beside the table (a file's folder or the folder itself), if any."""
    p = Path(str(table))
    folder = p if p.is_dir() else p.parent
    cand = folder / "rtml.toml"
    return cand if cand.is_file() else None
