"""storage.csv_cells: cells a spreadsheet would run as formulas get a leading quote, and
our readers get the original text back."""

from __future__ import annotations

import csv
import io

import pytest

from storage.csv_cells import FORMULA_START, escape_cell, unescape_cell

FORMULAS = [
    ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
    ("+1 555", "'+1 555"),
    ("-2 stars", "'-2 stars"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd|' /C calc'!A0", "'\tcmd|' /C calc'!A0"),
    ("\rline", "'\rline"),
    ("=1+2", "'=1+2"),
    ("-", "'-"),
    # a text that already starts with quotes before a formula character: one more quote,
    # so that unescaping gives it back exactly
    ("'=1", "''=1"),
    ("''@x", "'''@x"),
]

PLAIN = [
    "", "hello", "The refund took forever", "退款太慢了", "'quoted'", "'", "''", "'hello",
    " =not first", "a=b", "1+1", "负-2", "[EMAIL] wrote", "\nnew line first", "'\n",
]


@pytest.mark.parametrize(("text", "escaped"), FORMULAS)
def test_formula_cells_get_a_leading_quote_and_come_back(text, escaped):
    assert escape_cell(text) == escaped
    assert unescape_cell(escaped) == text


@pytest.mark.parametrize("text", PLAIN)
def test_other_cells_are_left_alone_both_ways(text):
    assert escape_cell(text) == text
    assert unescape_cell(text) == text


@pytest.mark.parametrize("text", [t for t, _ in FORMULAS] + PLAIN)
def test_no_escaped_cell_starts_like_a_formula(text):
    assert not escape_cell(text).startswith(FORMULA_START)
    assert unescape_cell(escape_cell(text)) == text


def test_every_formula_character_of_owasp_is_covered():
    assert set(FORMULA_START) == {"=", "+", "-", "@", "\t", "\r"}
    for char in FORMULA_START:
        assert escape_cell(char + "x") == "'" + char + "x"


def test_unescaping_removes_exactly_one_quote():
    assert unescape_cell("'=x") == "=x"
    assert unescape_cell("''=x") == "'=x"
    assert unescape_cell("'x") == "'x"  # not before a formula character: text of its own


def test_a_csv_file_of_escaped_cells_round_trips():
    texts = [t for t, _ in FORMULAS] + PLAIN
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(
        [[escape_cell(t)] for t in texts])
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert [unescape_cell(row[0]) for row in rows] == texts
    assert not any(row[0].startswith(FORMULA_START) for row in rows)
