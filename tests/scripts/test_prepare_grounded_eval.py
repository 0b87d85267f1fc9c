"""scripts/prepare_grounded_eval.py on tiny hand-written SQuAD-style files: the passage is
the sentences around the answer within the size limit, unanswerable and long answers are
left out, the sample is seeded, and the rows read back as a grounded evaluation file."""

import importlib.util
import json
from pathlib import Path

import pytest

from finetune.answer_quality import read_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prep():
    spec = importlib.util.spec_from_file_location("prepare_grounded_eval", REPO / "scripts" / "prepare_grounded_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _squad(path: Path, contexts: list[tuple[str, str, str]], impossible: bool = False) -> None:
    paragraphs = [{"context": c, "qas": [{"id": f"q{i}", "question": q, "is_impossible": impossible,
                                          "answers": [] if impossible else [{"text": a, "answer_start": c.find(a)}]}]}
                  for i, (c, q, a) in enumerate(contexts)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": paragraphs}]}, ensure_ascii=False))


def test_trim_keeps_the_answer_sentence_and_neighbours_within_the_limit(prep):
    filler = " ".join(["Filler sentence number one is here."] * 1)
    context = " ".join([f"Sentence {i} says little of note today." for i in range(20)]) + \
        " The pump was built by Thomas Savery in 1698. " + filler
    passage = prep.trim_passage(context, "Thomas Savery", -1, "en")
    assert "Thomas Savery" in passage and len(passage.split()) <= prep.MAX_WORDS
    assert passage.startswith("Sentence") and "Sentence 0 " not in passage
    zh = "这是第一句话。" * 30 + "杨群是哈尔滨人。" + "后来他去了香港。"
    out = prep.trim_passage(zh, "哈尔滨", zh.find("哈尔滨"), "zh")
    assert "哈尔滨" in out and len(out) <= prep.MAX_CHARS
    assert prep.trim_passage("No answer here.", "Paris", 0, "en") is None


def test_writes_a_seeded_sample_readable_as_an_evaluation_file(prep, tmp_path):
    root = tmp_path / "datasets"
    _squad(root / "squad2" / "dev-v2.0.json",
           [(f"Fact {i}: the value is {i} metres. More text follows.", f"What is the value {i}?", f"{i} metres")
            for i in range(5)] + [("A very long answer appears here in this sentence for sure.", "q?",
                                   "A very long answer appears here in this sentence for sure")])
    _squad(root / "cmrc2018" / "cmrc2018_dev.json", [(f"第{i}条：数值是{i}米。", f"数值{i}是多少？", f"{i}米")
                                                     for i in range(5)])
    out = tmp_path / "eval.jsonl"
    assert prep.main(["--datasets", str(root), "--en", "3", "--zh", "2", "--out", str(out)]) == 0
    rows = read_rows(out)
    assert [r["language"] for r in rows] == ["en"] * 3 + ["zh"] * 2
    assert all(r["facts"][0][0] in r["passage"] for r in rows)
    assert not any("long answer" in r["passage"] for r in rows)  # an 11-word answer is left out
    first = out.read_text(encoding="utf-8")
    prep.main(["--datasets", str(root), "--en", "3", "--zh", "2", "--out", str(out)])
    assert out.read_text(encoding="utf-8") == first
    with pytest.raises(SystemExit):
        prep.main(["--datasets", str(root), "--en", "9", "--out", str(out)])
