"""rtml.toml validation: every error names the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from rtml_cli.config import build_config, load_toml, model_spec_from_text, parse_strategies
from rtml_cli.errors import ConfigError
from rtml_cli.io import Roles


def test_full_config_resolves():
    cfg = build_config(
        {
            "data": {
                "time": "ts",
                "label": "click",
                "key": "u",
                "label_delay": "30m",
                "warmup": "7d",
                "request_features": ["hour"],
            },
            "model": {
                "estimator": "sklearn.linear_model:SGDClassifier",
                "params": {"loss": "log_loss"},
            },
            "strategy": [
                {"name": "b", "kind": "batch", "retrain_every": "1h", "train_window": "7d"},
                {"name": "o", "kind": "online", "update_every": 32},
            ],
            "feature": [
                {"name": "c1h", "key": "u", "column": "click", "agg": "sum", "window": "1h"}
            ],
            "report": {"baseline": "o", "checks": ["o.auc - b.auc >= 0"]},
        }
    )
    assert cfg.label_delay_us == 30 * 60 * 1_000_000 and cfg.warmup == "7d"
    assert cfg.strategies[0].retrain_every_us == 3_600_000_000
    assert cfg.strategies[0].train_window_us == 7 * 86_400_000_000
    assert cfg.strategies[1].update_every == 32 and cfg.baseline == "o"
    assert cfg.features[0].name == "c1h" and cfg.features[0].as_written["agg"] == "sum"
    assert cfg.model.params == {"loss": "log_loss"}


def test_flags_override_the_file():
    cfg = build_config(
        {"data": {"time": "ts", "warmup": "7d"}, "model": {"preset": "sgd"}},
        roles=Roles(time="when"),
        warmup="0.1",
        model="hgb",
        strategies="static",
    )
    assert cfg.roles.time == "when" and cfg.warmup == 0.1 and cfg.model.preset == "hgb"
    assert [s.kind for s in cfg.strategies] == ["static"] and cfg.baseline == "static"


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"data": {"lable": "y"}}, "unknown key 'lable' in [data]. Did you mean 'label'?"),
        ({"strategy": [{"kind": "bach"}]}, "unknown kind 'bach'. Did you mean 'batch'?"),
        (
            {"strategy": [{"kind": "online", "update_every": 0}]},
            "update_every must be an integer >= 1. Got 0",
        ),
        ({"strategy": [{"kind": "batch", "retrain_every": "soon"}]}, "Got 'soon' instead"),
        (
            {"strategy": [{"kind": "static", "update_every": 2}]},
            "update_every applies to online only",
        ),
        ({"strategy": [{"kind": "batch"}, {"kind": "batch"}]}, "repeated: batch"),
        ({"data": {"warmup": 1.5}}, "must be in (0, 1). Got 1.5"),
        (
            {"model": {"preset": "sgd", "factory": "m.py:f"}},
            "give exactly one of preset, estimator or factory",
        ),
        ({"report": {"baseline": "x"}}, "baseline 'x' is not a strategy"),
        ({"feature": [{"name": "f", "column": "c", "agg": "sum"}]}, "missing 'window'"),
        ({"modle": {}}, "Did you mean 'model'?"),
    ],
)
def test_errors_name_key_value_and_choices(raw, message):
    with pytest.raises(ConfigError) as exc:
        build_config(raw)
    assert message in str(exc.value)


def test_compact_strategies_names_and_params():
    specs = parse_strategies("batch:1d,batch:1h:7d,stream,online:32,live=online:1,static")
    assert [s.name for s in specs] == [
        "batch_1d",
        "batch_1h",
        "stream",
        "online_32",
        "live",
        "static",
    ]
    assert (
        specs[1].train_window_us == 7 * 86_400_000_000
        and specs[2].retrain_every_us == 86_400_000_000
    )
    with pytest.raises(ConfigError, match="online:x"):
        parse_strategies("online:x")


def test_model_text_forms():
    assert model_spec_from_text("rf").preset == "rf"
    assert (
        model_spec_from_text("sklearn.linear_model:Ridge").estimator == "sklearn.linear_model:Ridge"
    )
    assert model_spec_from_text("models/m.py:make").factory == "models/m.py:make"


def test_bad_toml_file(tmp_path):
    p = tmp_path / "rtml.toml"
    p.write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(p)
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "none.toml")


@pytest.mark.parametrize(
    "model,message",
    [
        ({"estimator": "a:B", "params": "loss"}, "[model] params of r.toml must be a table"),
        ({"estimator": 3}, "[model] estimator of r.toml must be a non-empty string. Got 3."),
        ({"factory": ["m.py:f"]}, "[model] factory of r.toml must be a non-empty string"),
    ],
)
def test_model_table_values_have_the_right_types(model, message):
    with pytest.raises(ConfigError) as err:
        build_config({"model": model}, source="r.toml")
    assert message in str(err.value)


# What [[feature]] tables and --feature flags resolve to (the values the former config-side
# FeatureSpec produced once converted for computation), and the manifest's record of them.
_FEATURE_TABLES = [
    {"name": "a", "key": "u", "column": "x", "agg": "MEAN", "window": "60m"},
    {"name": "b", "column": "*", "agg": "count", "window": "1h"},
    {"name": "c", "key": ["u", "v"], "column": "y", "agg": "std", "window": 3600},
    {"name": "d", "key": "", "column": "x", "agg": "sum", "window": "1d"},
    {"name": "e", "key": [], "column": "x", "agg": "last", "window": "1d"},
]
_FEATURE_FLAGS = ["u:x:max:2h", "u+v:*:count: 5m :n5", ":x:count_distinct:1d:g"]
H = 3_600_000_000
D = 24 * H


@pytest.mark.parametrize("table_key,b_key", [("u", ("u",)), (["u", "w"], ("u", "w")), (None, None)])
def test_feature_tables_and_flags_resolve_to_one_spec(table_key, b_key):
    from rtml_cli.features_spec import FeatureSpec

    cfg = build_config({"feature": _FEATURE_TABLES}, features=_FEATURE_FLAGS)
    assert all(isinstance(f, FeatureSpec) for f in cfg.features)
    # Only the table that names no key takes the table's entity key; an empty key is global.
    assert [f.key_from_table for f in cfg.features] == [False, True] + [False] * 6
    resolved = [f.with_table_key(table_key) for f in cfg.features]
    assert resolved == [
        FeatureSpec("a", ("u",), "x", "mean", H),
        FeatureSpec("b", b_key, "*", "count", H),
        FeatureSpec("c", ("u", "v"), "y", "std", H),
        FeatureSpec("d", None, "x", "sum", D),
        FeatureSpec("e", None, "x", "last", D),
        FeatureSpec("u_x_max_2h", ("u",), "x", "max", 2 * H),
        FeatureSpec("n5", ("u", "v"), "*", "count", 300_000_000),
        FeatureSpec("g", None, "x", "count_distinct", D),
    ]
    assert not any(f.key_from_table for f in resolved)
    # A flag parses to the same spec whether it comes through the config or directly.
    assert cfg.features[5] == FeatureSpec.parse("u:x:max:2h")


def test_manifest_records_features_as_written():
    cfg = build_config({"feature": _FEATURE_TABLES}, features=_FEATURE_FLAGS)
    assert cfg.to_json()["features"] == [
        *_FEATURE_TABLES,
        {"name": "u_x_max_2h", "key": ["u"], "column": "x", "agg": "max", "window": "2h"},
        {"name": "n5", "key": ["u", "v"], "column": "*", "agg": "count", "window": " 5m "},
        {"name": "g", "key": [], "column": "x", "agg": "count_distinct", "window": "1d"},
    ]


def test_input_columns_key_and_its_older_name():
    assert build_config({"data": {"inputs": ["a", "b"]}}).roles.features == ["a", "b"]
    assert build_config({"data": {"features": ["a"]}}).roles.features == ["a"]
    cfg = build_config({"data": {"request_inputs": "h"}})
    assert cfg.roles.request_features == ["h"]
    assert build_config({"data": {"request_features": ["h"]}}).roles.request_features == ["h"]
    with pytest.raises(ConfigError, match="both 'inputs' and 'features'"):
        build_config({"data": {"inputs": ["a"], "features": ["a"]}})
