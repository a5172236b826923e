"""Where the items of a JSON list start, so errors in uploaded files can name a line.

`json.loads` tells where a syntax error is, but once a list has parsed, an item that is
valid JSON yet the wrong shape has no line number; readers of seed files and exports use
this to say "line 17, item 3" instead of "item 3".
"""

from __future__ import annotations

import json


def item_lines(text: str) -> list[int]:
    """The 1-based line on which each top-level item of a JSON list starts.

    `text` must already be known to parse as a JSON list.
    """
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    lines: list[int] = []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return lines
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
