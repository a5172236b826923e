"""Refresh the README's generated settings table (between the settings markers)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.settings_table import table

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    text = README.read_text()
    new = re.sub(
        r"(<!-- settings:begin -->\n).*?(<!-- settings:end -->)",
        lambda m: m.group(1) + table() + "\n" + m.group(2),
        text,
        flags=re.S,
    )
    README.write_text(new)


if __name__ == "__main__":
    main()
