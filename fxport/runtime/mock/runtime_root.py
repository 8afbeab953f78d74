"""Private TT-Metal runtime root for the mock device, built in a cache folder.

TT-Metal looks for the sfpi compiler under `<runtime root>/runtime/sfpi/`; the root defaults to
the installed ttnn package. We never modify that package: instead we build a second root that
symlinks every entry of the package, except `runtime/`, which is a real folder holding a link to
the package's `runtime/hw` and the stand-in compiler (`stand_in_gxx.sh`, with its data files from
`toolchain.py`). `TT_METAL_RUNTIME_ROOT` then points at the new root.

Layout, keyed by the ttnn version and installation, so an upgrade gets a fresh root and two
environments (say a checkout's .venv and CI's) never rebuild one root under each other's feet:
    <cache>/mock-runtime/<ttnn version>-<install hash>/root/        TT_METAL_RUNTIME_ROOT
    <cache>/mock-runtime/<ttnn version>-<install hash>/jit-cache/   TT_METAL_CACHE (stand-in outputs)
    <cache>/mock-runtime/<ttnn version>-<install hash>/logs/        TT_METAL_LOGS_PATH
with <cache> = $FXPORT_CACHE or ~/.cache/fxport. Nothing here imports ttnn.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import toolchain

STAND_IN = Path(__file__).with_name("stand_in_gxx.sh")
COMPILER_RELPATH = Path("runtime/sfpi/compiler/bin/riscv-tt-elf-g++")
COMPILER_DATA_RELPATH = Path("runtime/sfpi/compiler/fxport")  # read by the stand-in
MANIFEST_NAME = ".fxport-mock-root.json"
# Bump when the layout or the stand-in's behaviour changes in a way a cached root must not keep.
LAYOUT_VERSION = 1


class MockRuntimeError(RuntimeError):
    """The private runtime root cannot be built or used."""


@dataclass(frozen=True)
class MockRuntime:
    ttnn_version: str
    ttnn_dir: Path
    root: Path  # TT_METAL_RUNTIME_ROOT (exported with a trailing slash)
    jit_cache: Path  # TT_METAL_CACHE
    logs: Path  # TT_METAL_LOGS_PATH (TT-Metal's generated/ folder)

    @property
    def compiler(self) -> Path:
        return self.root / COMPILER_RELPATH


def cache_home() -> Path:
    configured = os.environ.get("FXPORT_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "fxport"


def ttnn_location() -> tuple[str, Path]:
    """Version and package folder of the installed ttnn, without importing it."""
    spec = importlib.util.find_spec("ttnn")
    try:
        version = importlib.metadata.version("ttnn")
    except importlib.metadata.PackageNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MockRuntimeError("ttnn is not installed in this Python environment")
    return version, Path(spec.submodule_search_locations[0]).resolve()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(ttnn_dir: Path) -> dict:
    """Everything a built root depends on; a root whose manifest differs is rebuilt."""
    return {
        "layout": LAYOUT_VERSION,
        "ttnn_dir": str(ttnn_dir),
        "entries": sorted(e for e in os.listdir(ttnn_dir) if e != "__pycache__"),
        "runtime_entries": sorted(os.listdir(ttnn_dir / "runtime")),
        "sfpi_version": (ttnn_dir / "tt_metal" / "sfpi-version").read_text(),
        "stand_in_sha256": _sha256(STAND_IN.read_bytes()),
        "elf_sha256": _sha256(toolchain.minimal_riscv_elf()),
    }


def _is_current(root: Path, manifest: dict) -> bool:
    try:
        recorded = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return False
    return recorded == manifest and os.access(root / COMPILER_RELPATH, os.X_OK)


def _populate(root: Path, ttnn_dir: Path, manifest: dict) -> None:
    for entry in manifest["entries"]:
        if entry != "runtime":
            os.symlink(ttnn_dir / entry, root / entry)
    runtime = root / "runtime"
    runtime.mkdir()
    for entry in manifest["runtime_entries"]:
        if entry != "sfpi":
            os.symlink(ttnn_dir / "runtime" / entry, runtime / entry)
    compiler = root / COMPILER_RELPATH
    compiler.parent.mkdir(parents=True)
    shutil.copyfile(STAND_IN, compiler)
    compiler.chmod(0o755)
    data = root / COMPILER_DATA_RELPATH
    data.mkdir()
    (data / "version").write_text(toolchain.version_line(manifest["sfpi_version"]) + "\n")
    (data / "minimal.elf").write_bytes(toolchain.minimal_riscv_elf())
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _check_compiler(compiler: Path, sfpi_version: str) -> None:
    """Run the installed stand-in once: catches a noexec cache folder, a missing /bin/sh."""
    expected = toolchain.version_line(sfpi_version)
    try:
        done = subprocess.run([str(compiler), "--version"], capture_output=True, text=True,
                              timeout=60)
        first_line = done.stdout.splitlines()[0] if done.stdout else ""
    except OSError as exc:
        raise MockRuntimeError(f"cannot run the stand-in compiler {compiler}: {exc}") from exc
    if done.returncode != 0 or first_line != expected:
        raise MockRuntimeError(
            f"stand-in compiler {compiler} printed {first_line!r} (exit {done.returncode}), "
            f"expected {expected!r}: {done.stderr.strip()}")


def build_runtime_root(cache_dir: Path | str | None = None) -> MockRuntime:
    """Build the private runtime root if it is missing or stale; return its paths.

    Idempotent and cheap when current (one listdir and one small JSON read). A new root is built
    in a temporary folder and renamed into place, so concurrent processes never see half a root.
    """
    version, ttnn_dir = ttnn_location()
    install = _sha256(str(ttnn_dir).encode())[:12]
    base = (Path(cache_dir).expanduser() if cache_dir else cache_home()) / "mock-runtime" / f"{version}-{install}"
    runtime = MockRuntime(version, ttnn_dir, base / "root", base / "jit-cache", base / "logs")
    manifest = _manifest(ttnn_dir)
    if _is_current(runtime.root, manifest):
        return runtime

    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".root-", dir=base))
    try:
        staging.chmod(0o755)
        _populate(staging, ttnn_dir, manifest)
        _check_compiler(staging / COMPILER_RELPATH, manifest["sfpi_version"])
        if runtime.root.exists() or runtime.root.is_symlink():
            retired = Path(tempfile.mkdtemp(prefix=".stale-", dir=base))
            os.replace(runtime.root, retired / "root")
            shutil.rmtree(retired, ignore_errors=True)
            # Cached JIT outputs came from the old stand-in; TT-Metal's cache key would not notice.
            shutil.rmtree(runtime.jit_cache, ignore_errors=True)
        try:
            os.rename(staging, runtime.root)
        except OSError:
            if not _is_current(runtime.root, manifest):  # lost a race to an equal root: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    runtime.jit_cache.mkdir(parents=True, exist_ok=True)
    return runtime
