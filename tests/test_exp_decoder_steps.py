"""benchmarks/exp_decoder_steps.py: its variants build, and runs from parallel processes average."""

from __future__ import annotations

import json
import statistics

import pytest

from script_loader import load_script

exp = load_script("benchmarks/exp_decoder_steps.py")


def test_summarise_averages_each_variant_over_the_lines_of_every_file(tmp_path):
    lines = {
        "a.jsonl": [("x", 1, 30.0, 80.0), ("y", 1, 20.0, 70.0)],
        "b.jsonl": [("x", 2, 40.0, 84.0), "not json: a warning line"],
    }
    for name, rows in lines.items():
        text = [r if isinstance(r, str) else json.dumps(dict(zip(("name", "seed", "knn", "probe"), r),
                                                              steps=9, loss=0.5)) for r in rows]  # fmt: skip
        (tmp_path / name).write_text("\n".join(text) + "\n")
    out = exp.summarise([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
    assert list(out) == ["x", "y"]
    assert out["x"]["knn"] == 35.0 and out["x"]["seeds"] == [1, 2] and out["x"]["steps"] == 9
    assert out["x"]["probe_std"] == pytest.approx(statistics.stdev([80.0, 84.0]))
    assert out["y"]["knn"] == 20.0 and out["y"]["knn_std"] is None


def test_every_variant_builds_the_decoder_it_names():
    for name in ("default-depth1-dr0.25", "cross-dr1", "default-split-eps12"):
        assert exp.build(name)[1] == 390, name
    system, _ = exp.build("cross-dr1")  # the CrossMAE config, whatever the fast preset is now
    decoder = system.model.decoders["image"]
    assert type(decoder).__name__ == "CrossAttentionDecoder" and decoder.decode_ratio == 1.0
    system, _ = exp.build("default-depth1-dr0.25")
    assert len(system.model.decoders["image"].blocks) == 1 and "decode_ratio 0.25" in system.notes
    system, _ = exp.build("default-split-eps12")
    norms = [m.eps for n, m in system.model.named_modules() if n.startswith("omnimask.encoder") and hasattr(m, "eps")]
    assert len(norms) >= 8 and set(norms) == {1e-12}
    system, _ = exp.build("transformers-mae-init-lr2x")
    assert system.recipe.optim.base_lr == 2e-3 and "ViTMAEForPreTraining" in system.notes
