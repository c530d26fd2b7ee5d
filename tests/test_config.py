"""Recipe config loading: YAML floats, overrides and strict dataclass building."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from omnimask.run_config import ConfigError, apply_overrides, from_dict, load_yaml, parse_value, to_dict
from omnimask.training import OptimConfig, TrainConfig


def test_load_yaml_reads_exponent_floats(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(
        "optim:\n  base_lr: 1e-4\n  min_lr: 1.5e-6\n  eps: 1E-8\n  big: 1e5\n  half: .5\n"
        "  count: 10\n  quoted: '1e-4'\n  neg: -2e-3\n  plain: 3.0\n  flag: true\n"
    )
    cfg = load_yaml(p)["optim"]
    assert cfg["base_lr"] == 1e-4 and isinstance(cfg["base_lr"], float)
    assert cfg["min_lr"] == 1.5e-6 and cfg["eps"] == 1e-8 and cfg["big"] == 1e5
    assert cfg["half"] == 0.5 and cfg["neg"] == -2e-3 and cfg["plain"] == 3.0
    assert cfg["count"] == 10 and isinstance(cfg["count"], int)
    assert cfg["quoted"] == "1e-4"  # explicit quoting still wins
    assert cfg["flag"] is True


def test_load_yaml_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_yaml(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml.*mapping"):
        load_yaml(p)
    p = tmp_path / "dup.yaml"
    p.write_text("a: 1\na: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_yaml(p)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(empty) == {}


def test_parse_value():
    assert parse_value("1e-4") == 1e-4
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("null") is None
    assert parse_value("runs/x") == "runs/x"


def test_apply_overrides_sets_nested_and_deletes():
    cfg = {"optim": {"base_lr": 1.5e-4, "betas": [0.9, 0.95]}, "train": {"epochs": 10, "bf16": False}, "name": "x"}
    out = apply_overrides(
        cfg,
        [
            "optim.base_lr=1e-4",
            "train.bf16=true",
            "optim.betas=[0.9,0.99]",
            "optim.clip_grad=null",
            "~train.epochs",
            "name=a=b",
            "train.new_key=3",
        ],
    )
    assert out["optim"] == {"base_lr": 1e-4, "betas": [0.9, 0.99], "clip_grad": None}
    assert isinstance(out["optim"]["base_lr"], float)
    assert out["train"] == {"bf16": True, "new_key": 3}
    assert out["name"] == "a=b"  # only the first '=' separates key and value
    assert cfg["train"]["epochs"] == 10  # the input is not modified


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.base_lr", "malformed override 'optim.base_lr'"),
        ("optimm.base_lr=1", "override 'optimm.base_lr=1'.*section 'optimm' does not exist"),
        ("optim.sub.x=1", "section 'optim.sub' does not exist"),
        ("~optim.nothing", "key 'optim.nothing' does not exist"),
        ("~optim.base_lr=3", "malformed override"),
        ("optim..x=1", "empty key component"),
    ],
)
def test_apply_overrides_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides({"optim": {"base_lr": 1.0}}, [override])


@dataclass
class Sub:
    size: int = 4
    kind: Literal["a", "b"] = "a"


@dataclass
class Outer:
    name: str
    rate: float = 0.5
    dims: tuple[int, ...] = (1, 2)
    pair: tuple[float, float] = (0.0, 1.0)
    tags: list[str] = field(default_factory=list)
    limit: int | None = None
    sub: Sub = field(default_factory=Sub)
    maybe_sub: Sub | None = None


def test_from_dict_builds_nested_and_coerces():
    obj = from_dict(
        Outer,
        {
            "name": "n",
            "rate": 1,
            "dims": [3, 4, 5],
            "pair": [1, 2],
            "tags": ["t"],
            "limit": 1e3,
            "sub": {"size": 8, "kind": "b"},
            "maybe_sub": {"size": 2},
        },
        "model",
    )
    assert obj.rate == 1.0 and isinstance(obj.rate, float)
    assert obj.dims == (3, 4, 5) and obj.pair == (1.0, 2.0) and obj.limit == 1000
    assert obj.sub == Sub(8, "b") and obj.maybe_sub == Sub(2, "a")
    assert from_dict(Outer, to_dict(obj), "model") == obj
    assert to_dict(obj)["dims"] == [3, 4, 5]  # YAML-safe


def test_from_dict_unknown_key_did_you_mean():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['base_lrr'\] in optim.*Did you mean 'base_lr'"):
        from_dict(OptimConfig, {"base_lrr": 1e-4}, "optim")
    with pytest.raises(ConfigError, match=r"in model\.sub.*Did you mean 'size'"):
        from_dict(Outer, {"name": "n", "sub": {"sizes": 3}}, "model")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"epochs": "ten"}, r"train\.epochs: expected int, got 'ten'"),
        ({"epochs": 2.5}, r"train\.epochs: expected int, got 2\.5"),
        ({"bf16": "yes"}, r"train\.bf16: expected bool"),
        ({"batch_size": True}, r"train\.batch_size: expected int, got True"),
        ({"output_dir": 3}, r"train\.output_dir: expected str"),
        ({"max_steps": "x"}, r"train\.max_steps: expected int"),
    ],
)
def test_from_dict_type_errors_name_key_and_value(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, data, "train")


def test_from_dict_more_errors():
    with pytest.raises(ConfigError, match=r"optim\.betas: expected 2 items"):
        from_dict(OptimConfig, {"betas": [0.9]}, "optim")
    with pytest.raises(ConfigError, match=r"optim\.lr: expected float, got '1e-4x'"):
        from_dict(OptimConfig, {"lr": "1e-4x"}, "optim")
    with pytest.raises(ConfigError, match=r"model\.sub\.kind: expected one of \['a', 'b'\]"):
        from_dict(Outer, {"name": "n", "sub": {"kind": "c"}}, "model")
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        from_dict(Outer, {}, "model")
    with pytest.raises(ConfigError, match=r"model\.tags\[1\]: expected str"):
        from_dict(Outer, {"name": "n", "tags": ["a", 2]}, "model")
    assert from_dict(OptimConfig, None, "optim") == OptimConfig()


def test_yaml_to_dataclass_end_to_end(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("optim:\n  base_lr: 1e-4\n  betas: [0.9, 0.999]\ntrain:\n  epochs: 5\n")
    cfg = apply_overrides(load_yaml(p), ["optim.warmup_epochs=1", "train.bf16=true"])
    optim = from_dict(OptimConfig, cfg["optim"], "optim")
    train = from_dict(TrainConfig, cfg["train"], "train")
    assert optim.base_lr == 1e-4 and optim.betas == (0.9, 0.999) and optim.warmup_epochs == 1.0
    assert train.epochs == 5 and train.bf16 is True
