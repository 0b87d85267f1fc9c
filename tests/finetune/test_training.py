"""finetune/training.py, the building blocks both recipes share, on their own (the recipes'
end-to-end tests run them together)."""

from __future__ import annotations

import json

from core.adapter_artifact import FIELDS, write_meta
from finetune.chat_recipe import ChatArgs
from finetune.classifier_recipe import ClassifierArgs
from finetune.training import (Evaluation, Loop, TrainingFlags, adapter_meta, init_from_problems, keep_best,
                               plan_steps)


def test_both_recipes_share_the_training_flags():
    shared = set(TrainingFlags.__dataclass_fields__)
    assert shared <= set(ChatArgs.__dataclass_fields__) and shared <= set(ClassifierArgs.__dataclass_fields__)
    assert ClassifierArgs(train="a.csv", qlora=True).train == ["a.csv"]
    assert (ChatArgs(qlora=True).bits, ChatArgs(qlora=True).gradient_checkpointing) == (4, "on")
    assert ChatArgs(gradient_checkpointing=False).gradient_checkpointing == "off"  # YAML's bare off


def test_plan_steps_rounds_a_short_last_group_up():
    args = ChatArgs(batch_size=4, grad_accum=3, epochs=1.5)
    schedule = plan_steps([10] * 30, args, num_processes=1)  # 8 micro-batches: steps of 3, 3, 2
    assert (schedule.n_batches, schedule.total_steps, schedule.n_epochs) == (8, 5, 2)
    assert plan_steps([10] * 30, ChatArgs(batch_size=4, max_steps=7), num_processes=2).total_steps == 7
    assert plan_steps([10] * 30, ChatArgs(batch_size=4), num_processes=2).n_batches == 4


def test_adapter_meta_keeps_the_artifacts_field_order():
    args = ClassifierArgs(train=["a.csv"], base="minilm-l6", bits=8)
    meta = adapter_meta(args, kind="classifier", task="intent", version="v1", data=[], metrics={"accuracy": 1.0},
                        teacher=None, lora=True, labels=["a", "b"])
    assert list(meta) == list(FIELDS)
    assert meta["quantization"] == "int8" and meta["hyperparameters"]["base"] == "minilm-l6"
    chat = adapter_meta(ChatArgs(), kind="chat", task="chat", version="c", data=[], metrics={}, lora={})
    assert "labels" not in chat and "teacher" not in chat


def test_init_from_problems(tmp_path):
    assert "not a supportbot adapter directory" in init_from_problems(tmp_path, "smollm2-135m")[0]
    write_meta(tmp_path, {"task": "sentiment", "base": "minilm-l6"})
    assert init_from_problems(tmp_path, "minilm-l6") == []
    assert init_from_problems(tmp_path, "minilm-l6", task="chat") == [
        f"--init-from {tmp_path} is a sentiment adapter, not a chat adapter"]
    assert "was trained on base 'minilm-l6', not --base 'me5-small'" in init_from_problems(tmp_path, "me5-small")[0]
    (tmp_path / "supportbot.json").write_text("{oops")
    assert "unreadable supportbot.json" in init_from_problems(tmp_path, "minilm-l6")[0]


class _Model:
    training = False

    def train(self):
        self.training = True


class _Accelerator:
    is_main_process = True

    def unwrap_model(self, model):
        return model


def test_keep_best_saves_the_best_and_stops_after_patience(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr("finetune.training.save_trainable", lambda model, path: saved.append(path))
    loop = Loop(_Accelerator(), _Model(), None, None, None, None, higher_is_better=False, stale="no lower loss",
                desc="t")
    state = {"step": 0, "best": None, "best_step": None, "bad_evals": 0, "history": []}
    stops = []
    for loss in (3.0, 2.0, 2.5, 2.0, 1.0, 1.5, 1.5):
        state["step"] += 1
        state["history"].append({"step": state["step"]})
        stops.append(keep_best(loop, state, Evaluation(loss, {"eval_loss": loss}, f"loss {loss}", {}), 2, tmp_path))
    assert stops == [False, False, False, True, False, False, True]  # equal is no improvement
    assert (state["best"], state["best_step"]) == (1.0, 5) and len(saved) == 3
    assert state["history"][0] == {"step": 1, "eval_loss": 3.0} and loop.model.training
    json.dumps(state)  # the checkpoint's state.json
