from __future__ import annotations

import json
from collections import Counter

import pytest

from core.errors import InputError
from finetune.data import Example, Source, mix, read_examples, sha256_file, split
from fixtures.tiny import write_csv

ROWS = [("good phone", "positive"), ("bad, awful phone", "negative"), ('he said "hi"', "neutral")]


def _jsonl(path, records, blank_lines=False):
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text(("\n\n" if blank_lines else "\n").join(lines) + "\n", encoding="utf-8")
    return path


def test_csv(tmp_path):
    path = write_csv(tmp_path / "d.csv", ROWS)
    assert read_examples(path) == [Example(t, l) for t, l in ROWS]


def test_tsv(tmp_path):
    path = write_csv(tmp_path / "d.tsv", ROWS, delimiter="\t")
    assert read_examples(path) == [Example(t, l) for t, l in ROWS]


def test_jsonl_with_unicode_and_non_string_labels(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "服务太差了", "label": "negative"}, {"text": " ok ", "label": 1}])
    assert read_examples(path) == [Example("服务太差了", "negative"), Example("ok", "1")]


@pytest.mark.parametrize(
    ("header", "suffix"),
    [(("sentence", "category"), ".csv"), (("review", "label"), ".csv"), (("Text", "Intent"), ".tsv"),
     ((" text_a ", "LABEL"), ".csv")],
)
def test_column_aliases(tmp_path, header, suffix):
    path = write_csv(tmp_path / f"d{suffix}", ROWS, header=header, delimiter="\t" if suffix == ".tsv" else ",")
    assert [e.label for e in read_examples(path)] == ["positive", "negative", "neutral"]


def test_extra_columns_are_ignored(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,text,source,label\n1,good,web,positive\n", encoding="utf-8")
    assert read_examples(path) == [Example("good", "positive")]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_examples(tmp_path / "nope.csv")


def test_unknown_format(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="unknown format '.parquet'"):
        read_examples(path)


def test_missing_columns_name_what_was_found(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,label\nhi,positive\n")
    with pytest.raises(InputError) as info:
        read_examples(path)
    assert str(path) in str(info.value) and "no text column" in str(info.value) and "body" in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n")
    with pytest.raises(InputError, match="no rows"):
        read_examples(path)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"text": oops}\n')
    with pytest.raises(InputError) as info:
        read_examples(path)
    assert f"{path}:3:" in str(info.value)


def test_empty_label_in_csv_names_the_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,positive\nbad,\n", encoding="utf-8")  # line 3
    with pytest.raises(InputError) as info:
        read_examples(path)
    assert str(path) in str(info.value) and "row 3" in str(info.value)


def test_empty_text_in_jsonl_names_the_line(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "good", "label": "positive"}, {"text": "  ", "label": "negative"}])
    with pytest.raises(InputError, match="row 2 has an empty text"):
        read_examples(path)


def test_empty_text_in_jsonl_with_blank_lines_names_the_file_line(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "good", "label": "positive"}, {"text": "", "label": "negative"}],
                  blank_lines=True)  # the bad record is on line 3
    with pytest.raises(InputError, match="row 3 has an empty text"):
        read_examples(path)


@pytest.mark.parametrize("line", ['["good", "positive"]', '"good"'])
def test_jsonl_line_that_is_not_an_object(tmp_path, line):
    path = tmp_path / "d.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InputError, match=":1"):
        read_examples(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ncafé,positive\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_examples(path)


# ---- FILE@WEIGHT mixing ---------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "weight"), [("a.csv", 1.0), ("a.csv@0.5", 0.5), ("dir/a.csv@2", 2.0)])
def test_source_parse(spec, weight):
    source = Source.parse(spec)
    assert source.weight == weight
    assert source.path.name == "a.csv"


@pytest.mark.parametrize(("spec", "needle"), [("a.csv@x", "must be a number"), ("a.csv@0", "positive"),
                                              ("a.csv@-1", "positive")])
def test_source_parse_errors(spec, needle):
    with pytest.raises(InputError, match=needle):
        Source.parse(spec)


@pytest.fixture
def ten(tmp_path):
    return write_csv(tmp_path / "ten.csv", [(f"text {i}", "positive" if i % 2 else "negative") for i in range(10)])


@pytest.fixture
def four(tmp_path):
    return write_csv(tmp_path / "four.csv", [(f"other {i}", "neutral") for i in range(4)])


def test_mix_half(ten):
    mixed = mix([Source(ten, 0.5)], seed=0)
    assert len(mixed) == 5
    assert len(set(mixed)) == 5  # sampled without replacement
    assert set(mixed) <= set(read_examples(ten))


def test_mix_twice_repeats_every_row(ten):
    mixed = mix([Source(ten, 2)], seed=0)
    assert Counter(mixed) == {e: 2 for e in read_examples(ten)}


def test_mix_several_sources(ten, four):
    mixed = mix([Source(ten, 1.5), Source(four, 2)], seed=3)
    counts = Counter(e.label for e in mixed)
    assert counts["neutral"] == 8
    assert counts["positive"] + counts["negative"] == 15
    base = Counter(read_examples(ten))
    assert all(Counter(mixed)[e] in (1, 2) for e in base)  # 1.5: every row once, half of them twice


def test_mix_is_deterministic_and_shuffled(ten, four):
    a = mix([Source(ten, 0.5), Source(four)], seed=7)
    assert a == mix([Source(ten, 0.5), Source(four)], seed=7)
    b = mix([Source(ten), Source(four)], seed=1)
    assert b != read_examples(ten) + read_examples(four)  # shuffled


# ---- stratified split -----------------------------------------------------------------------------


def _examples(per_label: dict[str, int]) -> list[Example]:
    return [Example(f"{label} {i}", label) for label, n in per_label.items() for i in range(n)]


def test_split_is_stratified_and_disjoint():
    examples = _examples({"a": 40, "b": 20, "c": 10})
    train, held = split(examples, 0.2, seed=0)
    assert Counter(e.label for e in held) == {"a": 8, "b": 4, "c": 2}
    assert not {e.text for e in train} & {e.text for e in held}
    assert sorted(train + held, key=lambda e: e.text) == sorted(examples, key=lambda e: e.text)


def test_split_keeps_at_least_one_per_label():
    train, held = split(_examples({"a": 50, "rare": 2}), 0.1, seed=0)
    assert Counter(e.label for e in held) == {"a": 5, "rare": 1}
    assert any(e.label == "rare" for e in train)


def test_split_holds_out_every_copy_of_a_duplicated_text():
    examples = _examples({"a": 10, "b": 10}) * 2  # every text twice (e.g. FILE@2)
    train, held = split(examples, 0.2, seed=1)
    assert len(held) == len({e.text for e in held}) == 4  # eval lists each text once
    assert not {e.text for e in train} & {e.text for e in held}
    assert len(train) == 40 - 2 * 4


def test_split_is_deterministic():
    examples = _examples({"a": 30, "b": 30})
    assert split(examples, 0.2, seed=5) == split(examples, 0.2, seed=5)
    assert split(examples, 0.2, seed=5)[1] != split(examples, 0.2, seed=6)[1]


def test_sha256_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ---- issue 14: exports quote cells that start like a formula; training sees the text ----

FORMULA_ROWS = [('=HYPERLINK("http://x","y")', "negative"), ("+1 555", "neutral"), ("-2 stars", "-1"),
                ("@SUM(A1)", "positive"), ("'=quoted before", "neutral"), ("'plain quote", "neutral")]


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_escaped_formula_cells_are_read_as_the_original_text(tmp_path, suffix):
    from storage.csv_cells import escape_cell

    escaped = [(escape_cell(t), escape_cell(label)) for t, label in FORMULA_ROWS]
    assert escaped[0][0].startswith("'=") and escaped[2][1] == "'-1"  # the file really is escaped
    path = write_csv(tmp_path / f"d{suffix}", escaped, delimiter="\t" if suffix == ".tsv" else ",")
    assert read_examples(path) == [Example(t, label) for t, label in FORMULA_ROWS]


def test_an_export_file_is_read_as_the_original_text(tmp_path):
    from storage.export import render

    path = tmp_path / "export.csv"
    path.write_bytes(render("sentiment", [{"text": t, "label": label} for t, label in FORMULA_ROWS]))
    assert read_examples(path) == [Example(t, label) for t, label in FORMULA_ROWS]
