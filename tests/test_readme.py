"""The README and docs/ as a user reads them: every command block runs (scripts/readme_commands.py:
on small inputs where the documented ones are large, through a substitution table with reasons),
every link and repository path they name exists, and the facts they state twice agree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import readme_commands  # noqa: E402

BLOCKS = readme_commands.blocks()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_substitution_table_is_current_and_every_command_is_accounted_for():
    assert BLOCKS and not readme_commands.unused_rules(BLOCKS)
    for b in BLOCKS:
        # every command runs, or is in NOT_RUN with its reason (the test commands themselves)
        assert len(b.run) + len(b.skipped) == len(b.commands) or b.language in ("python", "excerpt"), b.id
        assert all(why for _, why in b.skipped)


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.slow else []) for b in BLOCKS if b.run]
)
def test_command_block_runs(block, tmp_path):
    done = readme_commands.run(block, readme_commands.scratch(tmp_path))
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
    assert done.returncode == 0, f"{block.id} exited {done.returncode}:\n{tail}"


def test_the_default_suite_runs_the_first_command():
    # The README's first command is what a newcomer runs first: it is checked on every run of the suite.
    first = BLOCKS[0]
    assert first.id.startswith("README.md:") and not first.slow
    assert first.run == ["bash scripts/bootstrap.sh && .venv/bin/fxport trace resnet50"]


def test_commands_call_the_venvs_fxport():
    for b in BLOCKS:
        for c in b.commands:
            assert not re.search(r"(^|[;&|]\s*)fxport\b", c), f"{b.id}: bare `fxport` in {c!r}; use .venv/bin/fxport"


def test_links_and_paths_exist():
    missing = []
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"[a-z]+:", target) and not (page.parent / target).exists():
                missing.append(f"{page.name}: link {target}")
        for path in re.findall(r"`((?:fxport|tests|scripts|bench|docs|models|reports)/[\w./@-]*)`", text):
            if not (ROOT / path.rstrip("/")).exists() and "*" not in path:
                missing.append(f"{page.name}: path {path}")
        for name in re.findall(r"\b[A-Z][A-Z_]+\.md\b", text):
            if not (ROOT / name).exists() and not (ROOT / "docs" / name).exists():
                missing.append(f"{page.name}: file {name}")
    assert not missing, missing


def test_stage_numbers_agree_between_the_pipeline_and_the_layout():
    pipeline = dict(re.findall(r"^(\d)\. \*\*(\w+)\*\*", (ROOT / "docs/run.md").read_text(), re.M))
    stages = {name: int(n) for n, name in pipeline.items()}
    assert list(stages) == ["capture", "passes", "plan", "partition", "execute", "report"]
    layout = (ROOT / "docs/layout.md").read_text()
    where = {
        "fxport/capture/": "capture",
        "fxport/plan.py": "plan",
        "fxport/partition/": "partition",
        "fxport/runtime/": "execute",
        "fxport/report/": "report",
    }
    for path, stage in where.items():
        line = next(x for x in layout.splitlines() if x.startswith(path))
        assert f"stage {stages[stage]}:" in line, (line, stage)
    assert "passes/: stage 2," in layout and "`fxport run` (stages 1-6)" in layout
