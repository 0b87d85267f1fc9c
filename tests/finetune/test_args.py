"""finetune.args.parse_args: dataclass flags plus `--config run.yaml` defaults."""

from __future__ import annotations

import pytest
import yaml

from core.errors import InputError
from finetune.args import parse_args
from finetune.classifier_recipe import ClassifierArgs


def test_flags(tmp_path):
    args = parse_args(ClassifierArgs, ["--train", "a.csv", "b.csv@0.5", "--epochs", "1.5", "--qlora",
                                       "--record", "false", "--labels", "neg,pos"])
    assert args.train == ["a.csv", "b.csv@0.5"]
    assert args.epochs == 1.5
    assert args.qlora is True and args.bits == 4  # --qlora is 4-bit
    assert args.record is False
    assert args.labels == "neg,pos"
    assert args.base == "minilm-l6"  # default


def test_config_gives_defaults_and_flags_override(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"task": "intent", "train": ["x.csv"], "epochs": 7, "lora_r": 4,
                                      "learning_rate": 1e-3, "record": False}))
    args = parse_args(ClassifierArgs, ["--config", str(config), "--lora-r", "12", "--train", "y.csv"])
    assert args.task == "intent" and args.epochs == 7 and args.learning_rate == 1e-3 and args.record is False
    assert args.lora_r == 12  # the flag wins
    assert args.train == ["y.csv"]


def test_flag_order_does_not_matter(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("lora_r: 4\n")
    assert parse_args(ClassifierArgs, ["--lora_r", "9", "--config", str(config)]).lora_r == 9


@pytest.mark.parametrize(
    ("content", "needle"),
    [("lora_rank: 4\n", "unknown keys ['lora_rank']"), ("- a\n- b\n", "expected a mapping")],
)
def test_bad_config(tmp_path, content, needle):
    config = tmp_path / "run.yaml"
    config.write_text(content)
    with pytest.raises(InputError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        parse_args(ClassifierArgs, ["--config", str(config)])


def test_missing_config(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        parse_args(ClassifierArgs, ["--config", str(tmp_path / "nope.yaml")])


def test_unknown_flag():
    with pytest.raises(InputError, match="unknown arguments: --lora-rank 4"):
        parse_args(ClassifierArgs, ["--train", "a.csv", "--lora-rank", "4"])


def test_a_repeated_list_flag_keeps_every_value(tmp_path):
    args = parse_args(ClassifierArgs, ["--train", "a.csv", "--epochs", "2", "--train", "b.csv@0.5", "c.csv",
                                       "--train=d.csv"])
    assert args.train == ["a.csv", "b.csv@0.5", "c.csv", "d.csv"]
    assert args.epochs == 2
