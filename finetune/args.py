"""Argument parsing for recipes: dataclasses via HfArgumentParser, plus `--config run.yaml`.

Values from the YAML file are defaults; flags on the command line override them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from core.errors import InputError

T = TypeVar("T")


def parse_args(cls: type[T], argv: list[str] | None = None) -> T:
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(cls)
    parser.add_argument("--config", default=None, help="YAML file with defaults for these flags")
    argv = _merge_repeated_list_flags(parser, argv)
    known, _ = parser.parse_known_args(argv)
    defaults = {}
    if known.config:
        import yaml

        path = Path(known.config)
        if not path.is_file():
            raise InputError(f"--config {path}: no such file")
        defaults = yaml.safe_load(path.read_text()) or {}
        if not isinstance(defaults, dict):
            raise InputError(f"--config {path}: expected a mapping of flag names to values")
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(set(defaults) - fields)
        if unknown:
            raise InputError(f"--config {path}: unknown keys {unknown}")
        parser.set_defaults(**defaults)
    ns, rest = parser.parse_known_args(argv)
    if rest:
        raise InputError(f"unknown arguments: {' '.join(rest)}")
    values = {k: v for k, v in vars(ns).items() if k != "config"}
    return cls(**values)


def parse_and_validate(cls: type[T], argv: list[str] | None = None) -> T:
    """parse_args, then the dataclass's validate(): every problem at once, before any work."""
    args = parse_args(cls, argv)
    args.validate()
    return args


def _merge_repeated_list_flags(parser, argv: list[str]) -> list[str]:
    """`--train a.csv --train b.csv` means both files (argparse alone keeps the last)."""
    list_flags = {}
    for action in parser._actions:
        if action.nargs in ("+", "*"):
            for option in action.option_strings:
                list_flags[option] = action.dest
    merged: dict[str, list[str]] = {}
    first_flag: dict[str, str] = {}
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        name, eq, inline = token.partition("=")
        dest = list_flags.get(name)
        if dest is None:
            out.append(token)
            i += 1
            continue
        if dest not in merged:
            merged[dest] = []
            first_flag[dest] = name
            out.append(("\0", dest))  # placeholder, filled below
        i += 1
        if eq:
            merged[dest].append(inline)
        while i < len(argv) and not argv[i].startswith("--"):
            merged[dest].append(argv[i])
            i += 1
    result: list[str] = []
    for token in out:
        if isinstance(token, tuple):
            dest = token[1]
            result.append(first_flag[dest])
            result.extend(merged[dest])
        else:
            result.append(token)
    return result
