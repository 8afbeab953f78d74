"""Health of the mock runtime at device open: the root (see runtime_root) and the JIT cache are
checked, and repaired when this process is their only user.

Why: TT-Metal trusts its JIT cache. A truncated kernel ELF there makes the first op that loads it
fail with "PHDRS are missing or malformed" and the next one wait forever in `get_cached_binary`
(measured with ttnn 0.81.1: Ctrl-C is ignored, only SIGKILL ends it); a damaged stand-in compiler
makes every kernel build fail. Either would look like a verdict on the model. On a mock device every
linked ELF is the stand-in's one fixed binary (`toolchain.minimal_riscv_elf`), so the check is
exact: each `*.elf` in the cache must equal it byte for byte; a kernel build folder holding
anything else is removed, and TT-Metal rebuilds it on first use.

Processes sharing one runtime coordinate with `flock` on `<base>/.lock`: a process that finds no
other user takes the lock exclusively, checks and repairs, then keeps a shared lock until it exits;
one that finds the runtime in use checks the root only (its users are writing the cache) and, if
the root is damaged, stops with an environment error rather than pull it from under them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from . import toolchain
from .runtime_root import (
    MockRuntime,
    MockRuntimeError,
    build_runtime_root,
    expected_manifest,
    make_dirs,
    root_problems,
    runtime_paths,
)

LOCK_NAME = ".lock"
LOCK_WAIT_SECONDS = 120.0  # an exclusive holder only checks and repairs: seconds, not minutes

_held: dict[Path, int] = {}  # base folder -> fd holding the shared lock for this process's life


def damaged_elfs(jit_cache: Path) -> list[Path]:
    """ELF files in the JIT cache that differ from the stand-in's binary (truncated, emptied,
    replaced). Group- or world-writable folders found on the way are made private (TT-Metal
    creates them with the process umask). About 0.1 s for a cache of 4,000 kernels."""
    expected = toolchain.minimal_riscv_elf()
    bad, stack, uid = [], [jit_cache], os.geteuid()
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
                st = e.stat(follow_symlinks=False)
                if st.st_mode & 0o022 and st.st_uid == uid:
                    os.chmod(e.path, st.st_mode & 0o755)
            elif e.name.endswith(".elf"):
                try:
                    ok = e.is_file(follow_symlinks=False) and _read_small(e.path, len(expected)) == expected
                except OSError:
                    ok = False
                if not ok:
                    bad.append(Path(e.path))
    return sorted(bad)


def _read_small(path: str, size: int) -> bytes | None:
    if os.stat(path).st_size != size:
        return None
    with open(path, "rb") as f:
        return f.read()


def _build_folder(elf: Path, jit_cache: Path) -> Path:
    """The kernel build folder holding `elf`: .../kernels/<name>/<hash>/ (its processors' outputs
    and generated headers), or the ELF's own folder elsewhere (firmware)."""
    parts = elf.relative_to(jit_cache).parts
    if "kernels" in parts:
        i = parts.index("kernels")
        if len(parts) > i + 3:
            return jit_cache.joinpath(*parts[: i + 3])
    return elf.parent


def repair_jit_cache(jit_cache: Path) -> list[str]:
    """Remove the build folders of damaged ELFs; returns a note saying so (none when all was
    sound)."""
    damaged = damaged_elfs(jit_cache)
    folders = sorted({_build_folder(e, jit_cache) for e in damaged})
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    if not folders:
        return []
    return [
        f"removed {len(folders)} kernel build(s) with damaged ELF files from the JIT cache "
        f"(e.g. {damaged[0].relative_to(jit_cache)}); TT-Metal rebuilds them"
    ]


def _lock(base: Path, exclusive: bool) -> int | None:
    fd = os.open(base / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def claim_runtime(cache_dir: Path | str | None = None) -> MockRuntime:
    """Build, check and repair the mock runtime, and hold it (shared) for this process.

    Returns the runtime; its `repaired` says what was repaired (empty when all was sound).
    Raises MockRuntimeError (an environment error) when it is damaged and cannot be repaired now.
    """
    runtime = runtime_paths(cache_dir)
    base = runtime.root.parent
    if base in _held:
        return build_runtime_root(cache_dir)
    try:
        make_dirs(base)
        exclusive = _lock(base, exclusive=True)
    except OSError as exc:
        raise MockRuntimeError(
            f"cannot create the mock runtime under {base}: {exc.strerror or exc}; set FXPORT_CACHE to a writable folder"
        ) from None
    if exclusive is not None:  # nobody else uses this runtime: check and repair
        try:
            runtime = build_runtime_root(cache_dir)
            notes = list(runtime.repaired) + repair_jit_cache(runtime.jit_cache)
        finally:
            fcntl.flock(exclusive, fcntl.LOCK_SH)  # keep it, shared, while this process runs
        _held[base] = exclusive
        return replace(runtime, repaired=tuple(notes))

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while (shared := _lock(base, exclusive=False)) is None:  # an exclusive holder is repairing
        if time.monotonic() > deadline:
            raise MockRuntimeError(
                f"the mock runtime {base} stayed locked for {LOCK_WAIT_SECONDS:.0f} s "
                "by another fxport process; end it or set FXPORT_CACHE elsewhere"
            )
        time.sleep(0.1)
    _held[base] = shared
    # The JIT cache is not checked here: its users may be writing it right now, and a file half
    # written is not a damaged one. Whatever they leave damaged, the next sole user repairs.
    problems = root_problems(runtime.root, runtime.ttnn_dir, expected_manifest(runtime.ttnn_dir))
    if problems:
        raise MockRuntimeError(
            f"the mock runtime is damaged ({problems[0]}) and other fxport processes "
            "are using it, so it cannot be repaired now; rerun when they finish "
            "(fxport repairs it then) or set FXPORT_CACHE to another folder"
        )
    return runtime
