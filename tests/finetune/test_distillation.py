"""Distillation in finetune/classifier_recipe.py (--teacher, --unlabelled): the loss, and a tiny run
whose student moves to a teacher that disagrees with the gold labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.classifier import TextClassifier
from core.errors import InputError
from finetune.classifier_recipe import combined_loss, distillation_loss, main
from fixtures import tiny

LABELS = ["negative", "neutral", "positive"]


def test_distillation_loss_is_zero_at_the_teacher_and_pulls_towards_it():
    teacher_logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.5]])
    teacher = torch.softmax(teacher_logits, -1)
    for t in (1.0, 2.0, 4.0):
        assert torch.allclose(distillation_loss(teacher_logits + 7.0, teacher, t), torch.zeros(2), atol=1e-5)
    student = torch.zeros(2, 3, requires_grad=True)
    loss = distillation_loss(student, teacher, 2.0)
    assert (loss > 0).all()
    loss.sum().backward()
    stepped = student.detach() - 1.0 * student.grad  # one gradient step
    assert (distillation_loss(stepped, teacher, 2.0) < loss.detach()).all()
    # T^2 * KL at T=1 is the plain KL divergence
    p, q = teacher[0], torch.softmax(torch.zeros(3), -1)
    assert torch.isclose(distillation_loss(torch.zeros(1, 3), teacher[:1], 1.0)[0], (p * (p / q).log()).sum(), atol=1e-6)


def test_combined_loss_mixes_gold_and_teacher_per_row():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.1, 0.0], [0.0, 2.0, 0.0]])
    teacher = torch.tensor([[0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.2, 0.6, 0.2]])
    gold = torch.tensor([0, 2, -1])  # the last row is unlabelled
    ce = torch.nn.functional.cross_entropy(logits, gold.clamp_min(0), reduction="none")
    kd = distillation_loss(logits, teacher, 2.0)
    got = combined_loss(logits, gold, teacher, alpha=0.25, temperature=2.0)
    want = (0.75 * ce[0] + 0.25 * kd[0] + 0.75 * ce[1] + 0.25 * kd[1] + kd[2]) / 3
    assert torch.isclose(got, want, atol=1e-6)
    only_gold = combined_loss(logits[:2], gold[:2], teacher[:2], alpha=0.0, temperature=2.0)
    assert torch.isclose(only_gold, ce[:2].mean(), atol=1e-6)


@pytest.fixture(scope="module")
def positive_teacher(tmp_path_factory) -> Path:
    """A tiny classifier that says "positive" (~0.98) to every text, whatever the gold label."""
    from transformers import BertForSequenceClassification

    path = tiny.build_bert_classifier(tmp_path_factory.mktemp("teacher") / "teacher")
    model = BertForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([-2.0, -2.0, 2.0]))
    model.save_pretrained(path)
    return path


def _argv(base, files, out, *extra) -> list[str]:
    return ["--train", str(files["train"]), "--eval", str(files["eval"]), "--base", str(base), "--output", str(out),
            "--batch-size", "8", "--learning-rate", "5e-3", "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0",
            "--epochs", "4", "--patience", "100", "--threads", "1", "--record", "false", "--bf16", "off",
            "--version", "tiny-v1", *map(str, extra)]


def _mean_proba(out: Path, files, monkeypatch) -> np.ndarray:
    monkeypatch.setenv("SUPPORTBOT_HOME", str(out.parent / "home"))
    from core.config import settings_with

    clf = TextClassifier.load(str(out), settings_with().model_cache_dir)
    texts = [line.split(",")[0] for line in Path(files["eval"]).read_text().splitlines()[1:]]
    return clf.predict_proba(texts).mean(axis=0)


def test_the_student_learns_the_teachers_distribution(tiny_base_dir, sentiment_files, positive_teacher, tmp_path,
                                                      monkeypatch):
    unlabelled = tiny.write_csv(tmp_path / "unlabelled.csv",
                                [(text,) for text, _ in tiny.labelled_examples(n_per_label=20, seed=7)], header=("text",))
    control = tmp_path / "control"
    main(_argv(tiny_base_dir, sentiment_files, control))
    student = tmp_path / "student"
    main(_argv(tiny_base_dir, sentiment_files, student, "--teacher", positive_teacher, "--unlabelled", unlabelled,
               "--distill-alpha", "1.0", "--temperature", "1.0"))

    control_p, student_p = _mean_proba(control, sentiment_files, monkeypatch), _mean_proba(student, sentiment_files,
                                                                                            monkeypatch)
    teacher_p = np.array([np.exp(-2), np.exp(-2), np.exp(2)]) / (2 * np.exp(-2) + np.exp(2))
    # gold labels alone: a third of the eval rows are positive; the teacher alone: ~0.96 for everything
    assert control_p[2] < 0.6
    assert student_p[2] > 0.8
    kl = lambda q: float((teacher_p * np.log(teacher_p / q)).sum())  # noqa: E731
    assert kl(student_p) < kl(control_p) / 5

    meta = json.loads((student / "supportbot.json").read_text())
    assert meta["teacher"] == str(positive_teacher)
    assert meta["hyperparameters"]["distill_alpha"] == 1.0
    assert [d.get("unlabelled", False) for d in meta["data"]] == [False, True]
    assert "distilled from" in (student / "README.md").read_text()
    assert not (student / "teacher_probs.npz").exists()  # the --resume cache is not part of the adapter
    assert json.loads((control / "supportbot.json").read_text())["teacher"] is None


def test_unlabelled_texts_need_a_teacher_and_sane_weights(sentiment_files, tmp_path):
    with pytest.raises(InputError) as exc:
        main(["--train", str(sentiment_files["train"]), "--unlabelled", str(sentiment_files["eval"]),
              "--distill-alpha", "1.5", "--temperature", "0", "--output", str(tmp_path / "x"), "--record", "false"])
    message = str(exc.value)
    assert "--teacher" in message and "--distill-alpha" in message and "--temperature" in message


def test_a_teacher_without_our_labels_is_refused(tiny_base_dir, sentiment_files, tmp_path, monkeypatch):
    from transformers import BertForSequenceClassification

    teacher = tiny.build_bert_classifier(tmp_path / "teacher")
    model = BertForSequenceClassification.from_pretrained(teacher)
    model.config.id2label = {0: "billing", 1: "shipping", 2: "refund"}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.save_pretrained(teacher)
    with pytest.raises(InputError, match="cannot teach"):
        main(_argv(tiny_base_dir, sentiment_files, tmp_path / "out", "--teacher", teacher, "--max-steps", "1"))
