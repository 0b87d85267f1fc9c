"""CSV cells that a spreadsheet will not run as formulas (CSV / formula injection).

A cell that starts with "=", "+", "-", "@", a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets: `=HYPERLINK("http://evil","click")` in a
customer's message becomes a live link (or worse) in the file an agent opens. The OWASP
recommendation is to prefix such a cell with a single quote, which spreadsheets show as
text and do not evaluate:

    escape_cell('=HYPERLINK("http://x","y")')  ->  '\'=HYPERLINK("http://x","y")'
    unescape_cell(escape_cell(text)) == text     # for every text

Our own readers (storage.export.parse, finetune.data) unescape, so erasure and training
see the original text. To keep the round trip exact, a text that already starts with
quotes before such a character ("'=1") gets one more quote too, and unescaping removes
exactly one quote from a cell that starts with one or more quotes followed by such a
character. Other cells are left as they are, both ways.
"""

from __future__ import annotations

import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")  # (quotes, then) a character that starts a formula
_QUOTED = re.compile(r"'+[=+\-@\t\r]")


def escape_cell(value: str) -> str:
    """`value` with a leading "'" when a spreadsheet would read it as a formula."""
    return "'" + value if _NEEDS_QUOTE.match(value) else value


def unescape_cell(value: str) -> str:
    """The inverse of escape_cell: one leading "'" removed before (more quotes and) a
    formula character; any other cell unchanged."""
    return value[1:] if _QUOTED.match(value) else value
