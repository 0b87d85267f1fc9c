"""The two sampling steps both data formats share (finetune/data.py for classifier rows,
finetune/chat_data.py for conversations): a weighted mix of sources, and an evaluation
split that keeps every held-out item out of training."""

from __future__ import annotations

import random
from typing import Callable, Hashable, Sequence, TypeVar

T = TypeVar("T")


def weighted_mix(sources: Sequence[tuple[list[T], float]], rng: random.Random) -> list[T]:
    """Each source's rows `weight` times over (0.5 keeps a random half, 2 repeats it
    twice), shuffled; deterministic for the generator's seed."""
    mixed: list[T] = []
    for rows, weight in sources:
        whole, frac = int(weight), weight - int(weight)
        mixed.extend(rows * whole)
        if frac:
            mixed.extend(rng.sample(rows, round(len(rows) * frac)))
    rng.shuffle(mixed)
    return mixed


def hold_out(items: list[T], key: Callable[[T], Hashable], held: set) -> tuple[list[T], list[T]]:
    """Items whose key is in `held` leave training; the evaluation split keeps the first
    of each (a repeated text or conversation is scored once)."""
    train = [item for item in items if key(item) not in held]
    seen: set = set()
    evaluation = []
    for item in items:
        k = key(item)
        if k in held and k not in seen:
            seen.add(k)
            evaluation.append(item)
    return train, evaluation
