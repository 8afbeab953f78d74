"""The command blocks of the README and of docs/*.md, as CI runs them (tests/test_readme.py).

Every ```bash block is run, in order, by bash with `set -euo pipefail`, in a scratch directory
that links the repository's files (so `out/` and anything else the commands write stays there);
so is every ```python block of the README, each a whole program (those of docs/ are fragments
about a `model` of the reader's), except an excerpt of generated code: a block whose first line is
`# excerpt of FILE` is not run, and the test that writes FILE checks that the excerpt's lines are
in it (`excerpt()`). Where
the documented input is large, the block runs on a small one: the substitutions below are the only
changes, each with its reason, and a substitution that no longer matches any block fails the test.
The few commands that cannot run in CI at all are listed in NOT_RUN with why; they are removed
from their block and the rest of the block still runs.

    .venv/bin/python scripts/readme_commands.py            # list every block and what runs
    .venv/bin/python scripts/readme_commands.py --run ID   # run one block (IDs as listed)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/*.md")


@dataclass(frozen=True)
class Substitution:
    pattern: str  # a regular expression on one command (continuation lines joined)
    replacement: str
    why: str


# Large inputs -> small ones of the same kind (same commands, same options, same code paths).
SUBSTITUTIONS = (
    Substitution(
        r"\btrace pi0(?=\s|$)",
        "trace pi0-tiny",
        "full-size PI0 (3.2 B parameters) takes about a minute to capture; pi0-tiny is the same code",
    ),
    Substitution(r"\brun pi0 ", "run pi0-tiny ", "full-size PI0 verdict run: minutes; pi0-tiny is the same code"),
    Substitution(
        r"--input-shape 1,3,2176,3840",
        "--input-shape 1,3,640,640",
        "a 4K YOLO takes minutes per run on 2 cores; 640x640 runs the same graph",
    ),
    Substitution(
        r"--input-shape 1,3,1280,1280",
        "--input-shape 1,3,320,320",
        "YOLO at 1280 in two sweeps takes minutes; 320x320 runs the same graph",
    ),
    Substitution(
        r"\bsweep (-j 2|--cluster ray) --out",
        r"sweep mobilenet_v2 resnet50 \1 --out",
        "the whole zoo (30 entries) takes several minutes; two models go through the same pool",
    ),
    Substitution(
        r"\bgen-tests --out",
        "gen-tests mobilenet_v2 --out",
        "the zoo's suite has 1,247 cases (7 minutes to run); one model's is the same code",
    ),
    Substitution(
        r"\bgen-tests yolov8x ", "gen-tests yolov8n ", "yolov8x's suite at 1280 is large; yolov8n's has the same ops"
    ),
    Substitution(
        r"mypkg\.models:build_net --input-shape 1,3,256,256",
        "tests.user_models:TinyCNN --input-shape 1,3,32,32",
        "`mypkg.models:build_net` stands for the reader's own model; a small one of the test suite's",
    ),
)


@dataclass(frozen=True)
class NotRun:
    pattern: str
    why: str


NOT_RUN = (
    NotRun(
        r"^bash scripts/bootstrap\.sh && \.venv/bin/python -m pytest -q -n 2$",
        "the test suite itself, which this check is part of (CI runs it from .ci/run)",
    ),
    NotRun(
        r"^\.venv/bin/python -m pytest -q -n 2 -m slow$",
        "the slow tests, which this check is part of (CI runs them from .ci/run)",
    ),
    NotRun(
        r"^bash scripts/regenerate-reports\.sh",
        "rewrites the checked-in reports/ (three full-zoo sweeps and the zoo's op suite, over an hour); "
        "its commands (sweep, gen-tests) run in other blocks on small inputs",
    ),
    NotRun(r"^RAY_ADDRESS=\S+ .*--device hardware", "needs a Ray cluster's head node and a Tenstorrent card"),
)

# Blocks whose commands run models take from 20 s to a few minutes: they run with the slow tests.
# A block is fast when every command it runs matches one of these.
FAST = (r"^bash scripts/bootstrap\.sh && \.venv/bin/fxport trace resnet50$", r"^\.venv/bin/fxport (models|ops)\b")


@dataclass
class Block:
    id: str  # file:line of the opening fence
    language: str  # "bash", "python" or "excerpt" (of generated code: not run)
    commands: list[str]  # as written, continuation lines joined
    run: list[str]  # after substitutions, without the NOT_RUN ones
    skipped: list[tuple[str, str]]  # (command, why)
    substituted: list[tuple[str, str, str]]  # (as written, as run, why)

    @property
    def slow(self) -> bool:
        if self.language == "python":
            return True
        return not all(any(re.search(p, c) for p in FAST) for c in self.run)


def _commands(text: str) -> list[str]:
    """The block's commands: comments and blank lines dropped, continuation lines joined."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = re.sub(r"\s+#.*$", "", line).rstrip() if not line.lstrip().startswith("#") else ""
        if not stripped and not current:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].strip() + " "
            continue
        out.append((current + stripped.strip()).strip())
        current = ""
    return [c for c in out if c]


def blocks() -> list[Block]:
    found = []
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in files:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            fence = lines[i].strip()
            if fence in ("```bash", "```python"):
                start = i
                i += 1
                body = []
                while lines[i].strip() != "```":
                    body.append(lines[i])
                    i += 1
                id = f"{path.relative_to(ROOT)}:{start + 1}"
                if fence == "```bash":
                    found.append(_block(id, "\n".join(body)))
                elif path.name == "README.md" and EXCERPT.match(body[0] if body else ""):
                    found.append(Block(id, "excerpt", body, [], [], []))
                elif path.name == "README.md":
                    program = "\n".join(body) + "\n"
                    found.append(Block(id, "python", [program], [program], [], []))
            i += 1
    return found


EXCERPT = re.compile(r"^# excerpt of (\S+)")


def excerpt(name: str) -> list[str]:
    """The lines of the README's excerpt of the generated file `name`, stripped, without the `...`
    marks of what was left out and without lines shortened with `(...)`: each must appear, in this
    order, in the file as written."""
    excerpts = (b for b in blocks() if b.language == "excerpt")
    block = next((b for b in excerpts if EXCERPT.match(b.commands[0]).group(1) == name), None)
    if block is None:
        raise LookupError(f"the README has no block headed '# excerpt of {name}'")
    return [line.strip() for line in block.commands[1:] if line.strip() not in ("", "...") and "(...)" not in line]


def _block(id: str, text: str) -> Block:
    commands = _commands(text)
    block = Block(id, "bash", commands, [], [], [])
    for c in commands:
        skip = next((n for n in NOT_RUN if re.search(n.pattern, c)), None)
        if skip:
            block.skipped.append((c, skip.why))
            continue
        run = c
        for s in SUBSTITUTIONS:
            new = re.sub(s.pattern, s.replacement, run)
            if new != run:
                block.substituted.append((run, new, s.why))
                run = new
        block.run.append(run)
    return block


def unused_rules(found: list[Block]) -> list[str]:
    """Substitutions and NOT_RUN entries that match no command any more (the table went stale)."""
    commands = [c for b in found if b.language == "bash" for c in b.commands]
    rules = [s.pattern for s in SUBSTITUTIONS] + [n.pattern for n in NOT_RUN]
    return [p for p in rules if not any(re.search(p, c) for c in commands)]


def scratch(directory: Path) -> Path:
    """A directory where the commands see the repository (linked) but write only there. The
    environment is brought up to date in the repository first, so that `scripts/bootstrap.sh` run
    from the scratch directory finds it current and installs nothing (an install from there would
    point the editable fxport at a directory about to be deleted)."""
    subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=ROOT, check=True, capture_output=True, timeout=3600)
    for entry in ROOT.iterdir():
        if entry.name not in ("out", ".git", ".fxport-cache", ".pytest_cache"):
            (directory / entry.name).symlink_to(entry)
    return directory


def run(block: Block, directory: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
    if block.language == "python":
        command = [".venv/bin/python", "-c", block.run[0]]
    else:
        command = ["bash", "-c", "set -euo pipefail\n" + "\n".join(block.run) + "\n"]
    return subprocess.run(
        command,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def main(argv: list[str]) -> int:
    found = blocks()
    if argv[:1] == ["--run"]:
        block = next(b for b in found if b.id == argv[1])
        with tempfile.TemporaryDirectory() as tmp:
            done = run(block, scratch(Path(tmp)))
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode
    for b in found:
        print(f"{b.id} ({'slow' if b.slow else 'default suite'}):")
        for c in b.run:
            print(f"    runs     {c}" if b.language == "bash" else "    runs     the python program")
        if b.language == "excerpt":
            print(f"    not run  {b.commands[0][2:]} (checked against the program `fxport export` writes)")
        for c, why in b.skipped:
            print(f"    not run  {c}\n             ({why})")
        for was, _, why in b.substituted:
            print(f"    instead of  {was}\n             ({why})")
    stale = unused_rules(found)
    if stale:
        print(f"stale rules (match no command): {stale}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
