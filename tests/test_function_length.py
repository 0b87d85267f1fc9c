"""No function over 100 lines (issue 17), checked in `make test`: every function and method
(nested ones too) in the code the project ships and runs, core storage bot finetune ui app
and scripts, read with `ast`. Alembic migrations are left out (a revision is written once
and never read again); tests are left out. Past 100 lines, split a function into named
steps that read top to bottom (e.g. bot/dialogue.py stream_turn, ui/customer_chat.py)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("core", "storage", "bot", "finetune", "ui", "app", "scripts")
MAX_LINES = 100

def long_functions(root: Path, max_lines: int = MAX_LINES) -> list[tuple[str, str, int]]:
    """(path relative to root, function name, its length in lines) for every function in
    root's FOLDERS longer than max_lines, from `def` to its last line (decorators not
    counted), outside migrations/ folders."""
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root)
            if "migrations" in relative.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > max_lines:
                        found.append((relative.as_posix(), node.name, lines))
    return found


def test_no_function_is_longer_than_100_lines():
    too_long = [f"{path} {name}: {lines} lines" for path, name, lines in long_functions(REPO)]
    assert too_long == []


def test_every_folder_is_there_to_walk():
    assert [folder for folder in FOLDERS if not (REPO / folder).is_dir()] == []


def function(name: str, body_lines: int, *, indent: str = "", prefix: str = "def") -> str:
    """Source of a function `body_lines + 1` lines long (its def line and the body)."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(body_lines - 1)) + f"{indent}    return 0\n"
    return f"{indent}{prefix} {name}():\n{body}"


def test_a_planted_long_function_fails(tmp_path):
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "bot" / "fits.py").write_text(function("exactly_100", 99) + "\n\n" + function("short", 3))
    assert long_functions(tmp_path) == []

    (tmp_path / "bot" / "long.py").write_text(function("one_too_many", 100))
    (tmp_path / "ui" / "tab.py").write_text(
        "class Tab:\n" + function("method", 150, indent="    ") + "\n\n"
        + "def outer():\n" + function("inner", 120, indent="    ") + "    return inner\n")
    (tmp_path / "scripts" / "job.py").write_text(function("main", 101, prefix="async def"))
    (tmp_path / "storage" / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "storage" / "migrations" / "versions" / "0001_initial.py").write_text(function("upgrade", 300))
    assert sorted(long_functions(tmp_path)) == [
        ("bot/long.py", "one_too_many", 101),
        ("scripts/job.py", "main", 102),
        ("ui/tab.py", "inner", 121),
        ("ui/tab.py", "method", 151),
        ("ui/tab.py", "outer", 123),
    ]

