"""Writes the mapping table's size, as `fxport ops` prints it, into README.md
("N aten overloads are mapped"), so that the README's count comes from the table itself.
Run by scripts/regenerate-reports.sh; tests/test_rule_coverage.py checks that it works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
PHRASE = re.compile(r"\d[\d,]* aten overloads are mapped")


def op_count() -> int:
    """The count on the last line of `fxport ops` ("235 aten overloads")."""
    out = subprocess.run([sys.executable, "-m", "fxport.cli", "ops"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^(\d+) aten overloads$", out, re.M).group(1))


def with_count(text: str, count: int) -> str:
    new, found = PHRASE.subn(f"{count:,} aten overloads are mapped", text)
    if found != 1:
        raise SystemExit(f"README.md: expected one '<N> aten overloads are mapped', found {found}")
    return new


def main() -> None:
    count = op_count()
    text = README.read_text()
    updated = with_count(text, count)
    if updated != text:
        README.write_text(updated)
    print(f"README.md: {count:,} aten overloads are mapped")


if __name__ == "__main__":
    main()
