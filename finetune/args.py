"""Argument parsing for recipes: dataclasses via HfArgumentParser, plus `--config run.yaml`.

Values from the YAML file are defaults; flags on the command line override them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from bot.errors import InputError

T = TypeVar("T")


def parse_args(cls: type[T], argv: list[str] | None = None) -> T:
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(cls)
    parser.add_argument("--config", default=None, help="YAML file with defaults for these flags")
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
