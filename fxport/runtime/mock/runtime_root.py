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

TT-Metal pastes these paths unquoted into shell command lines (the JIT compiler calls), so a path
with a space or a shell metacharacter would break every kernel build or, worse, run a command
named by whoever chose `FXPORT_CACHE` or `HOME`. The base is therefore used only when its absolute
path is made of `SAFE_PATH_CHARS` and every existing folder from the cache down to it belongs to
this user and is writable by nobody else; otherwise the runtime lives in a private fallback,
`/tmp/fxport-<uid>/mock-runtime/...` (mode 0700, checked the same way), and when that is not
usable either, the command stops with an environment error naming the cause.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from fxport.errors import EnvironmentFault

from . import toolchain

STAND_IN = Path(__file__).with_name("stand_in_gxx.sh")
COMPILER_RELPATH = Path("runtime/sfpi/compiler/bin/riscv-tt-elf-g++")
COMPILER_DATA_RELPATH = Path("runtime/sfpi/compiler/fxport")  # read by the stand-in
MANIFEST_NAME = ".fxport-mock-root.json"
# Bump when the layout or the stand-in's behaviour changes in a way a cached root must not keep.
LAYOUT_VERSION = 1


class MockRuntimeError(EnvironmentFault):
    """The private runtime root cannot be built or used."""


@dataclass(frozen=True)
class MockRuntime:
    ttnn_version: str
    ttnn_dir: Path
    root: Path  # TT_METAL_RUNTIME_ROOT (exported with a trailing slash)
    jit_cache: Path  # TT_METAL_CACHE
    logs: Path  # TT_METAL_LOGS_PATH (TT-Metal's generated/ folder)
    repaired: tuple[str, ...] = field(default=(), compare=False)  # what opening it had to repair

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
    where = Path(spec.submodule_search_locations[0]).resolve()
    if not (where / "runtime").is_dir() or not (where / "tt_metal").is_dir():
        raise MockRuntimeError(
            f"the ttnn package Python finds first, {where}, is not TT-NN (a folder or "
            "package named ttnn shadows the installed one); rename it or run from "
            "another directory"
        )
    return version, where


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_manifest(ttnn_dir: Path) -> dict:
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


# Folders fxport creates hold the compiler it executes: never writable by group or others,
# whatever the umask (with umask 000 they would be world-writable).
DIR_MODE = 0o755


def make_dirs(path: Path) -> None:
    """mkdir -p with DIR_MODE for every folder created, independent of the umask."""
    missing = []
    for p in (path, *path.parents):
        if p.exists():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir()
        except FileExistsError:
            continue  # a concurrent process made it
        p.chmod(DIR_MODE)


def _unsafe(path: Path) -> str | None:
    """Why a folder or file fxport executes from must not be trusted, or None."""
    st = path.lstat()
    if st.st_uid != os.geteuid():
        return f"{path} belongs to uid {st.st_uid}, not to this user"
    if st.st_mode & 0o022:
        return f"{path} is writable by {'others' if st.st_mode & 0o002 else 'its group'}"
    return None


def _recorded_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def root_problems(root: Path, ttnn_dir: Path, manifest: dict) -> list[str]:
    """What is wrong with a built root, checked against what `_populate` writes (the integrity
    manifest: every link and its target, the stand-in compiler and its data files by content,
    permissions); empty when the root is sound. Costs a few small reads."""
    if not root.is_dir() or root.is_symlink():
        return [f"{root} is missing"]
    if _recorded_manifest(root) != manifest:
        return [f"{root} was built for another ttnn or fxport version"]
    problems = []
    links = [(root / e, ttnn_dir / e) for e in manifest["entries"] if e != "runtime"]
    links += [(root / "runtime" / e, ttnn_dir / "runtime" / e) for e in manifest["runtime_entries"] if e != "sfpi"]
    for link, target in links:
        if not link.is_symlink() or os.readlink(link) != str(target) or not link.exists():
            problems.append(f"{link} no longer links to {target}")
    data = root / COMPILER_DATA_RELPATH
    expected = {
        root / COMPILER_RELPATH: STAND_IN.read_bytes(),
        data / "version": (toolchain.version_line(manifest["sfpi_version"]) + "\n").encode(),
        data / "minimal.elf": toolchain.minimal_riscv_elf(),
    }
    for path, content in expected.items():
        try:
            if path.is_symlink() or path.read_bytes() != content:
                problems.append(f"{path} is damaged (content differs)")
        except OSError:
            problems.append(f"{path} is missing")
    compiler = root / COMPILER_RELPATH
    if not problems and not os.access(compiler, os.X_OK):
        problems.append(f"{compiler} is not executable")
    if not problems:  # the folders and files on the way to what TT-Metal executes
        chain = [root, *[root / p for p in COMPILER_RELPATH.parents if str(p) != "."], compiler, data, *expected]
        problems = [reason for reason in map(_unsafe, dict.fromkeys(chain)) if reason][:1]
    return problems


def _populate(root: Path, ttnn_dir: Path, manifest: dict) -> None:
    for entry in manifest["entries"]:
        if entry != "runtime":
            os.symlink(ttnn_dir / entry, root / entry)
    runtime = root / "runtime"
    make_dirs(runtime)
    for entry in manifest["runtime_entries"]:
        if entry != "sfpi":
            os.symlink(ttnn_dir / "runtime" / entry, runtime / entry)
    compiler = root / COMPILER_RELPATH
    make_dirs(compiler.parent)
    shutil.copyfile(STAND_IN, compiler)
    compiler.chmod(0o755)
    data = root / COMPILER_DATA_RELPATH
    make_dirs(data)
    for name, content in (
        ("version", toolchain.version_line(manifest["sfpi_version"]) + "\n"),
        ("minimal.elf", toolchain.minimal_riscv_elf()),
    ):
        (data / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        (data / name).chmod(0o644)
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    (root / MANIFEST_NAME).chmod(0o644)


def _check_compiler(compiler: Path, sfpi_version: str) -> None:
    """Run the installed stand-in once: catches a noexec cache folder, a missing /bin/sh."""
    expected = toolchain.version_line(sfpi_version)
    try:
        done = subprocess.run([str(compiler), "--version"], capture_output=True, text=True, timeout=60)
        first_line = done.stdout.splitlines()[0] if done.stdout else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MockRuntimeError(f"cannot run the stand-in compiler {compiler}: {exc}") from exc
    if done.returncode != 0 or first_line != expected:
        raise MockRuntimeError(
            f"stand-in compiler {compiler} printed {first_line!r} (exit {done.returncode}), "
            f"expected {expected!r}: {done.stderr.strip()}"
        )


# Characters TT-Metal's unquoted command lines pass through unchanged (no space, quote, `$`, `;`, ...).
SAFE_PATH_CHARS = re.compile(r"[A-Za-z0-9._/+-]+")
FALLBACK_PARENT = Path("/tmp")  # not $TMPDIR: that is as much the user's choice as FXPORT_CACHE


def shell_safe(path: Path) -> bool:
    return bool(SAFE_PATH_CHARS.fullmatch(str(path))) and str(path).startswith("/")


def _private_chain(top: Path, base: Path) -> str | None:
    """Why the existing folders from `top` down to `base` cannot hold what fxport executes (not
    ours, writable by others, a link), or None."""
    for p in (top, *[top / part for part in base.relative_to(top).parts]):
        try:
            st = p.lstat()
        except FileNotFoundError:
            return None  # make_dirs creates the rest with DIR_MODE
        except OSError as exc:
            return f"{p}: {exc.strerror or exc}"
        if not os.path.isdir(p) or os.path.islink(p):
            return f"{p} is not a folder"
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return _unsafe(p) or f"{p} is not private"
    return None


def _fallback_top() -> Path:
    """`/tmp/fxport-<uid>`, created 0700; refused when it exists and is not ours and private."""
    top = FALLBACK_PARENT / f"fxport-{os.geteuid()}"
    try:
        top.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise MockRuntimeError(
            f"cannot create the private mock runtime folder {top}: "
            f"{exc.strerror or exc}; set FXPORT_CACHE to a private folder whose "
            "path has no spaces or shell characters"
        ) from None
    st = top.lstat()
    if os.path.islink(top) or not os.path.isdir(top) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise MockRuntimeError(
            f"{top} is not a private folder of this user (a link, another owner or "
            "open permissions), so the mock runtime cannot live there; remove it or "
            "set FXPORT_CACHE to a private folder whose path has no spaces or shell "
            "characters"
        )
    return top


def runtime_paths(cache_dir: Path | str | None = None) -> MockRuntime:
    """Where the runtime root for the installed ttnn lives (the private fallback folder may be
    created, nothing else)."""
    version, ttnn_dir = ttnn_location()
    install = _sha256(str(ttnn_dir).encode())[:12]
    top = Path(os.path.abspath(Path(cache_dir).expanduser() if cache_dir else cache_home()))
    base = top / "mock-runtime" / f"{version}-{install}"
    if not shell_safe(base) or _private_chain(top, base):
        top = _fallback_top()
        base = top / "mock-runtime" / f"{version}-{install}"
    return MockRuntime(version, ttnn_dir, base / "root", base / "jit-cache", base / "logs")


def build_runtime_root(cache_dir: Path | str | None = None) -> MockRuntime:
    """Build the private runtime root if it is missing, stale or damaged; return its paths.

    Cheap when sound (one listdir, a few small reads). A new root is built in a temporary folder
    and renamed into place, so concurrent processes never see half a root. A rebuilt root also
    drops the JIT cache: its binaries came from the old stand-in. Callers that share the root
    with other processes hold the runtime lock (`fxport.runtime.mock.health`) while building.
    """
    runtime = runtime_paths(cache_dir)
    expected = expected_manifest(runtime.ttnn_dir)
    problems = root_problems(runtime.root, runtime.ttnn_dir, expected)
    if problems:
        # A root of this very version that fails its checks was damaged: say so. A first build
        # or an upgrade is routine and silent.
        damaged = _recorded_manifest(runtime.root) == expected
        _rebuild(runtime, expected)
        if damaged:
            runtime = replace(runtime, repaired=(f"rebuilt the mock runtime root ({problems[0]})",))
    make_dirs(runtime.jit_cache)
    return runtime


def _rebuild(runtime: MockRuntime, expected: dict) -> None:
    base = runtime.root.parent
    try:
        make_dirs(base)
        for p in (base, base.parent):  # made by an fxport of before the explicit modes
            if p.stat().st_uid == os.geteuid() and p.stat().st_mode & 0o022:
                p.chmod(p.stat().st_mode & ~0o022)
        staging = Path(tempfile.mkdtemp(prefix=".root-", dir=base))
    except OSError as exc:
        raise MockRuntimeError(
            f"cannot create the mock runtime under {base}: {exc.strerror or exc}; set FXPORT_CACHE to a writable folder"
        ) from None
    try:
        staging.chmod(DIR_MODE)
        _populate(staging, runtime.ttnn_dir, expected)
        _check_compiler(staging / COMPILER_RELPATH, expected["sfpi_version"])
        if runtime.root.exists() or runtime.root.is_symlink():
            retired = Path(tempfile.mkdtemp(prefix=".stale-", dir=base))
            os.replace(runtime.root, retired / "root")
            shutil.rmtree(retired, ignore_errors=True)
            # Cached JIT outputs came from the old stand-in; TT-Metal's cache key would not notice.
            shutil.rmtree(runtime.jit_cache, ignore_errors=True)
        try:
            os.rename(staging, runtime.root)
        except OSError:
            if root_problems(runtime.root, runtime.ttnn_dir, expected):  # lost a race to an equal root: fine
                raise
    except OSError as exc:
        raise MockRuntimeError(
            f"cannot build the mock runtime root {runtime.root}: "
            f"{exc.strerror or exc}; set FXPORT_CACHE to a writable folder"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
