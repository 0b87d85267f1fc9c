"""finetune/sampling.py: the weighted mix and the held-out split both data formats use."""

from __future__ import annotations

import random

from finetune.sampling import hold_out, weighted_mix


def test_weighted_mix_repeats_whole_weights_and_samples_fractions():
    a, b = [f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]
    mixed = weighted_mix([(a, 2), (b, 0.5)], random.Random(0))
    assert sorted(x for x in mixed if x.startswith("a")) == sorted(a * 2)
    sampled = [x for x in mixed if x.startswith("b")]
    assert len(sampled) == 5 and len(set(sampled)) == 5 and set(sampled) <= set(b)
    assert mixed == weighted_mix([(a, 2), (b, 0.5)], random.Random(0))  # deterministic per seed
    assert mixed != a * 2 + sampled  # shuffled


def test_hold_out_keeps_held_items_out_of_training_and_scores_each_once():
    items = ["x", "y", "x", "z", "y"]
    train, evaluation = hold_out(items, lambda s: s, {"x", "y"})
    assert train == ["z"] and evaluation == ["x", "y"]
