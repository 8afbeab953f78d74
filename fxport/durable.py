"""Durable output: documents are written whole or not at all, one writer holds an output directory
at a time, and an output directory is checked before any work starts.

    with output_dir(args.out, "fxport run resnet50") as out:   # checked, created, locked
        ...                                                       # the work
        write_text(out / "run.json", text)                        # temp file + fsync + rename
        with atomic_open(out / "nodes.csv", newline="") as f: ...

A reader never sees half a document: each write goes to a hidden temporary file next to its
target, is flushed to disk and renamed over it (atomic within a file system); a process killed
mid-write leaves the previous version and at worst a temporary file, which the next writer of that
directory removes.

The lock is `flock` on `<dir>/.fxport.lock`, whose content names the holder (command, pid, start
time), so that a second writer fails at once with a line saying who has the directory. flock locks
die with their process, so a killed run never leaves a stale lock. (The `filelock` package offers
the lock but neither a holder record nor per-process re-entry, which nested writers here need.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator

from fxport.errors import FxportError

LOCK_NAME = ".fxport.lock"
TMP_SUFFIX = ".fxport-tmp"


class OutputError(FxportError):
    """An output directory that cannot be used (not a directory, not writable, in use)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", newline: str | None = None,
                encoding: str | None = "utf-8") -> Iterator[IO]:
    """A file object whose content replaces `path` only when the block ends without an error."""
    path = Path(path)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a document is as readable as open() makes it
        with os.fdopen(fd, mode, **({} if binary else {"newline": newline, "encoding": encoding})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, doc: object) -> Path:
    """Deterministic JSON (sorted keys, one-space indent), written atomically."""
    return write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def check_output(path: str | Path) -> Path:
    """Create `path` (and its parents) if needed and make sure files can be written into it;
    a one-line OutputError otherwise. Run before any work, so that a result is never computed
    for a place it cannot be saved to."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            where = "is" if parent == path else f"is under {parent}, which is"
            raise OutputError(f"output {path} {where} a file, not a directory; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fxport-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"cannot write to output directory {path}: {reason}; choose another --out") from None
    return path


# resolved directory -> [fd of its lock file, re-entry count]; flock is per open file, so a
# second open in this process would conflict with the first: nested writers re-enter instead.
_held: dict[Path, list[int]] = {}


def _holder_text(command: str) -> str:
    return json.dumps({"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%d %H:%M:%S")})


def _describe_holder(raw: bytes) -> str:
    try:
        h = json.loads(raw.decode())
        return f"`{h['command']}` (pid {h['pid']} on {h['host']}, since {h['since']})"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "another fxport process"


def lock_output(path: str | Path, command: str) -> None:
    """Take the directory's writer lock, or raise a one-line OutputError naming its holder.
    Re-entrant within a process; release with `unlock_output`."""
    key = Path(path).resolve()
    if key in _held:
        _held[key][1] += 1
        return
    fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 4096, 0) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else b""
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise OutputError(f"cannot lock output directory {path}: {exc.strerror}") from None
        raise OutputError(f"output directory {path} is in use by {_describe_holder(holder)}; "
                          "wait for it to finish or choose another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, _holder_text(command).encode(), 0)
    _held[key] = [fd, 1]
    for stale in key.glob(f".*{TMP_SUFFIX}"):  # left by a writer that was killed mid-write
        with contextlib.suppress(OSError):
            stale.unlink()


def unlock_output(path: str | Path) -> None:
    key = Path(path).resolve()
    held = _held.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(held[0], 0)
        os.close(held[0])  # releases the flock


@contextlib.contextmanager
def output_dir(path: str | Path, command: str | None = None) -> Iterator[Path]:
    """Check, create and lock an output directory for the duration of the block."""
    path = check_output(path)
    lock_output(path, command or " ".join(["fxport", *sys.argv[1:]]))
    try:
        yield path
    finally:
        unlock_output(path)


def inside(directory: str | Path, relative: str) -> Path | None:
    """`directory / relative` when it resolves inside `directory` (symbolic links followed),
    else None: a path read from a document must not lead a reader or writer elsewhere."""
    base = Path(directory).resolve()
    if not isinstance(relative, str) or not relative or "\0" in relative:
        return None
    target = (base / relative).resolve()
    return target if target != base and target.is_relative_to(base) else None
