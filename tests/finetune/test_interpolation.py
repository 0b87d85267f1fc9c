"""finetune/interpolation.py (averaging a retrained candidate with the active weights) and
how finetune/retrain.py uses it: the stable split, and the gate's choice among alphas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.config import settings_with
from finetune import retrain as rt
from finetune.interpolation import can_interpolate, interpolate
from fixtures.adapters import truncate_weights, write_adapter
from storage.export import ExportRow


def with_weights(path: Path, a: float, b: float) -> Path:
    write_adapter(path)
    save_file({"base_model.model.layer.lora_A.weight": torch.full((2, 8), a),
               "base_model.model.layer.lora_B.weight": torch.full((8, 2), b)}, str(path / "adapter_model.safetensors"))
    return path


def test_alpha_mixes_every_tensor_and_records_itself(tmp_path):
    active, candidate = with_weights(tmp_path / "active", 0.0, 2.0), with_weights(tmp_path / "cand", 4.0, -2.0)
    assert can_interpolate(active, candidate)
    half = interpolate(active, candidate, 0.5, tmp_path / "half")
    weights = load_file(half / "adapter_model.safetensors")
    assert torch.equal(weights["base_model.model.layer.lora_A.weight"], torch.full((2, 8), 2.0))
    assert torch.equal(weights["base_model.model.layer.lora_B.weight"], torch.full((8, 2), 0.0))
    assert json.loads((half / "supportbot.json").read_text())["interpolation"]["alpha"] == 0.5
    whole = load_file(interpolate(active, candidate, 1.0, tmp_path / "whole") / "adapter_model.safetensors")
    assert torch.equal(whole["base_model.model.layer.lora_A.weight"], torch.full((2, 8), 4.0))
    with pytest.raises(ValueError):
        interpolate(active, candidate, 1.5, tmp_path / "bad")


def test_different_tensors_or_a_plain_model_cannot_be_mixed(tmp_path):
    active = with_weights(tmp_path / "active", 0.0, 0.0)
    other = write_adapter(tmp_path / "other")
    save_file({"base_model.model.layer.lora_A.weight": torch.zeros(4, 8)}, str(other / "adapter_model.safetensors"))
    assert not can_interpolate(active, other)
    assert not can_interpolate(tmp_path / "not-an-adapter", active)


def test_an_unreadable_candidate_is_judged_alone(tmp_path):
    active = with_weights(tmp_path / "active", 0.0, 0.0)
    broken = truncate_weights(with_weights(tmp_path / "work" / "candidate", 1.0, 1.0))
    settings = settings_with(home=tmp_path, retrain_interpolation="1,0.5")
    assert rt._candidates(settings, str(active), broken) == [(1.0, broken)]


def rows(texts):
    return [ExportRow("c", {"text": t, "label": "negative"}, None) for t in texts]


def test_the_split_depends_on_the_rows_not_their_order_and_mostly_keeps_its_slice():
    first = rows([f"turn {i}" for i in range(100)])
    train, held = rt.split_stable(first, 0.3)
    assert len(held) == 30 and len(train) == 70
    again_train, again_held = rt.split_stable(list(reversed(first)), 0.3)
    assert {r.key for r in again_held} == {r.key for r in held}
    _, grown_held = rt.split_stable(first + rows([f"turn {i}" for i in range(100, 200)]), 0.3)
    kept = {r.key for r in held} & {r.key for r in grown_held}
    assert len(kept) >= 20  # a reshuffle would keep ~9 of the 30


def test_the_gate_keeps_the_best_passing_alpha(tmp_path, monkeypatch):
    settings = settings_with(home=tmp_path, retrain_tolerance=0.5)
    dirs = {1.0: tmp_path / "c1", 0.5: tmp_path / "c05", 0.25: tmp_path / "c025"}
    monkeypatch.setattr(rt, "_candidates", lambda s, active, cand: list(dirs.items()))
    # (benchmark, feedback slice) per model: alpha 1 learns most but forgets the benchmark
    scores = {"active": (90.0, 40.0), str(dirs[1.0]): (88.0, 80.0), str(dirs[0.5]): (89.8, 70.0),
              str(dirs[0.25]): (90.0, 55.0)}
    monkeypatch.setattr(rt, "score_classifier", lambda ref, task, data, s, restrict=True:
                        scores[ref][0 if data == "bench.csv" else 1])
    promote, reason, chosen, measured = rt._judge(settings, "sentiment", "active", dirs[1.0], ["bench.csv"], "held.csv")
    assert promote and chosen == dirs[0.5] and measured["alpha"] == 0.5, reason
    assert measured["candidate"] == {"benchmarks": {"bench.csv": 89.8}, "feedback": 70.0}
    # against the route's original model at 90.5, alpha 0.5 (89.8) lost too much: alpha 0.25 is kept
    scores["original"] = (90.5, None)
    promote, reason, chosen, measured = rt._judge(settings, "sentiment", "active", dirs[1.0], ["bench.csv"],
                                                  "held.csv", baseline_ref="original")
    assert promote and chosen == dirs[0.25] and measured["baseline"]["benchmarks"] == {"bench.csv": 90.5}, reason
    scores[str(dirs[0.5])] = scores[str(dirs[0.25])] = (85.0, 90.0)  # now only alpha 1... fails too
    promote, reason, chosen, _ = rt._judge(settings, "sentiment", "active", dirs[1.0], ["bench.csv"], "held.csv")
    assert not promote and chosen == dirs[1.0] and "worse on benchmark" in reason
