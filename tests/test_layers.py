"""The structure contract: dependencies point down (docs/architecture.md), and the package list
a non-editable install uses covers every package in the tree."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_layers_are_kept():
    # import-linter's command, in a subprocess: it reads the contract from pyproject.toml.
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_every_package_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fxport").rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    namespace = [
        d
        for d in (ROOT / "fxport").rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert not namespace, f"folders of modules without __init__.py (not installed): {namespace}"
    assert config["package-dir"]["fxport_models"] == "models"


def test_a_zoo_module_that_fails_to_import_is_named(monkeypatch):
    import pytest

    from fxport_models import registry

    monkeypatch.setattr(registry, "CATALOGUE", {**registry.CATALOGUE, "no_such_zoo_module": ("x",)})
    monkeypatch.setattr(registry, "_REGISTRY", {})
    with pytest.raises(registry.ZooError, match="fxport_models.no_such_zoo_module failed to import"):
        registry.entries()
    assert registry._REGISTRY == {}  # nothing half filled: the next call tries again


def test_a_zoo_module_whose_entries_differ_from_the_catalogue_is_named(monkeypatch):
    import pytest

    from fxport_models import registry

    monkeypatch.setattr(registry, "CATALOGUE", {**registry.CATALOGUE, "pi0": ("pi0",)})
    monkeypatch.setattr(registry, "_REGISTRY", {})
    with pytest.raises(registry.ZooError, match="fxport_models.pi0 defines pi0, pi0-tiny but the catalogue"):
        registry.entries()


def test_the_zoo_installs_under_a_name_users_do_not_have():
    import fxport_models

    assert fxport_models.__name__ == "fxport_models"
    assert "resnet50" in fxport_models.names()
