"""Labelled text files: CSV, TSV or JSONL with `text,label` columns (API.md data formats).

A training source may carry a weight, ``FILE@WEIGHT``: the file's rows are sampled
WEIGHT times (0.5 keeps a random half, 2 repeats every row twice), so several files can
be mixed in chosen proportions.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from finetune.sampling import hold_out, weighted_mix

TEXT_COLUMNS = ("text", "sentence", "text_a", "review")
LABEL_COLUMNS = ("label", "category", "intent")


@dataclass(frozen=True)
class Example:
    text: str
    label: str


@dataclass(frozen=True)
class Source:
    path: Path
    weight: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> "Source":
        path, _, weight = spec.rpartition("@") if "@" in spec else (spec, "", "")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise InputError(f"{spec!r}: the weight after @ must be a number, e.g. data.csv@0.5") from None
        if w <= 0:
            raise InputError(f"{spec!r}: the weight must be positive")
        return cls(Path(path), w)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pick(columns: list[str], wanted: tuple[str, ...], path: Path, what: str) -> str:
    lowered = {c.lower().strip(): c for c in columns}
    for name in wanted:
        if name in lowered:
            return lowered[name]
    raise InputError(f"{path}: no {what} column (looked for {', '.join(wanted)}; found {', '.join(columns)})")


def read_examples(path: str | Path) -> list[Example]:
    """Read a labelled file; every problem is reported with the file and line."""
    rows, line_numbers, text_col = _read_rows(path)
    label_col = _pick(list(rows[0].keys()), LABEL_COLUMNS, Path(path), "label")
    out = []
    for n, row in zip(line_numbers, rows):
        text, label = row.get(text_col), row.get(label_col)
        if text is None or label is None or not str(text).strip() or str(label).strip() == "":
            raise InputError(f"{path}: row {n} has an empty text or label (line {n})")
        out.append(Example(str(text).strip(), str(label).strip()))
    return out


def read_texts(path: str | Path) -> list[str]:
    """Read the text column of a file (CSV, TSV or JSONL as above; any label column is
    ignored), for texts a teacher model labels. Empty texts are skipped."""
    rows, _, text_col = _read_rows(path)
    return [str(row[text_col]).strip() for row in rows if row.get(text_col) is not None and str(row[text_col]).strip()]


def mix_texts(sources: list[Source], seed: int) -> list[str]:
    """Unlabelled texts from weighted sources, as `mix` does for labelled ones."""
    return _mix(sources, read_texts, seed)


def _read_rows(path: str | Path) -> tuple[list[dict], list[int], str]:
    """The rows of a CSV/TSV/JSONL file, the file line of each, and its text column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    rows: list[dict] = []
    line_numbers: list[int] = []  # the file line each row came from, for error messages
    try:
        if suffix in (".jsonl", ".json"):
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            obj = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise InputError(f"{path}:{n}: not JSON ({exc.msg})") from None
                        if not isinstance(obj, dict):
                            raise InputError(f"{path}:{n}: expected a JSON object with text and label")
                        rows.append(obj)
                        line_numbers.append(n)
        elif suffix in (".csv", ".tsv", ".txt"):
            from storage.csv_cells import unescape_cell  # exports quote "=...", "+...": undo it

            with open(path, encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                for row in reader:
                    rows.append({k: unescape_cell(v) if isinstance(v, str) else v for k, v in row.items()})
                    line_numbers.append(reader.line_num)
        else:
            raise InputError(f"{path}: unknown format {suffix!r}; use .csv, .tsv or .jsonl")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows, line_numbers, _pick(list(rows[0].keys()), TEXT_COLUMNS, path, "text")


def mix(sources: list[Source], seed: int) -> list[Example]:
    """Concatenate weighted sources (deterministic for a seed) and shuffle."""
    return _mix(sources, read_examples, seed)


def _mix(sources: list[Source], read, seed: int) -> list:
    """Each source's rows (`read(path)`) `weight` times over (a fraction: a sample), shuffled."""
    return weighted_mix([(read(source.path), source.weight) for source in sources], random.Random(seed))


def split(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out a stratified eval split; texts in eval never appear in train."""
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for ex in examples:
        by_label.setdefault(ex.label, []).append(ex)
    eval_texts: set[str] = set()
    for rows in by_label.values():
        unique = sorted({r.text for r in rows})
        rng.shuffle(unique)
        eval_texts.update(unique[: max(1, round(len(unique) * eval_fraction))])
    return hold_out(examples, lambda e: e.text, eval_texts)
