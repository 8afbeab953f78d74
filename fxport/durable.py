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

Nothing is written or removed through a link: a target that is a symbolic link or not a regular
file is refused (`OutputError`), the lock is opened with O_NOFOLLOW, and the folders fxport makes
inside an output directory (`subdir`: plots/, sweep entries, cache shards) are refused when they
are links. Readers of what fxport wrote earlier use `read_regular`, which refuses links, FIFOs and
devices without blocking. An existing non-empty folder that holds no fxport result is refused as
an output directory unless the command has --force (`check_output`), so fxport never removes or
overwrites a user's files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
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
def atomic_open(
    path: str | Path, mode: str = "w", newline: str | None = None, encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """A file object whose content replaces `path` only when the block ends without an error."""
    path = Path(path)
    binary = "b" in mode
    _refuse_special(path, "write")
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


def _refuse_special(path: Path, verb: str) -> None:
    """OutputError when `path` exists and is a link or not a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot {verb} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise OutputError(
            f"refusing to {verb} {path}: it is {kind} (fxport writes and removes only "
            "regular files it made); remove it or choose another --out"
        )


def subdir(parent: str | Path, name: str) -> Path:
    """`parent/name`, created if missing; an OutputError when it is a link or not a folder, so
    that nothing is written or removed through it."""
    path = Path(parent) / name
    with contextlib.suppress(FileExistsError):
        path.mkdir()
    if path.is_symlink() or not path.is_dir():
        raise OutputError(
            f"refusing to write into {path}: it is "
            f"{'a symbolic link' if path.is_symlink() else 'not a folder'} (fxport writes "
            "only into folders it made); remove it or choose another --out"
        )
    return path


def remove_file(path: str | Path) -> None:
    """Remove a file fxport wrote earlier: a missing one is fine; a link or anything but a
    regular file is refused."""
    _refuse_special(Path(path), "remove")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def clear_folder(path: str | Path, pattern: str, keep: set[str] = frozenset()) -> None:
    """Remove the regular files matching `pattern` in a folder fxport made (not those in
    `keep`), and the folder when that leaves it empty; a link at `path` is refused."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        _refuse_special(path, "clear")
        return
    for old in path.glob(pattern):
        if old.name not in keep:
            remove_file(old)
    with contextlib.suppress(OSError):  # not empty: something that is not ours stays
        path.rmdir()


class ReadError(OSError):
    """A file that is not a regular file (a link, FIFO, device, folder): never read."""


def read_regular(path: str | Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file; ReadError for a symbolic link, FIFO, device or folder (opened
    non-blocking, so a FIFO never hangs the reader), OSError when missing. `limit`: refuse
    files larger than this many bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError(errno.EINVAL, "not a regular file", str(path))
        if limit is not None and st.st_size > limit:
            raise ReadError(errno.EFBIG, f"larger than {limit} bytes", str(path))
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ReadError(errno.ELOOP, "a symbolic link", str(path)) from None
        raise
    finally:
        os.close(fd)


def not_private(path: str | Path) -> str | None:
    """Why a cache folder may be changed by other users (another owner, or writable by group or
    others), or None. Such a cache is used read-only, as ssh treats keys others can write."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid != os.geteuid():
        return f"it belongs to uid {st.st_uid}"
    if st.st_mode & 0o022:
        return f"it is writable by {'others' if st.st_mode & 0o002 else 'its group'}"
    return None


# What marks a folder as an fxport result (its lock file, or one of its documents): fxport may
# replace what it wrote there. Any other non-empty folder needs --force.
RESULT_MARKERS = (LOCK_NAME, "run.json", "sweep.json", "ops.json", "cases.json")


def is_result_folder(path: Path) -> bool:
    try:
        entries = os.listdir(path)
    except OSError:
        return True  # not a folder, or unreadable: the checks below say so
    return not entries or any(m in entries for m in RESULT_MARKERS)


def check_output(path: str | Path, force: bool = True) -> Path:
    """Create `path` (and its parents) if needed and make sure files can be written into it;
    a one-line OutputError otherwise. Run before any work, so that a result is never computed
    for a place it cannot be saved to. With `force` False, an existing non-empty folder that
    is not an fxport result is refused (fxport would replace or remove files in it)."""
    # Absolute now: model code run later may change the working directory.
    path = Path(os.path.abspath(path))
    if any(len(os.fsencode(part)) > 255 for part in path.parts):  # NAME_MAX of every file system here
        raise OutputError(f"output {str(path)[:60]}... has a folder name longer than 255 bytes; choose a shorter --out")
    if not force and path.is_dir() and not is_result_folder(path):
        raise OutputError(
            f"output {path} already holds files that are not fxport results; fxport "
            "would replace or remove some of them: choose an empty or new --out, or "
            "add --force"
        )
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
_created: dict[Path, bool] = {}  # whether this process made the lock file (see output_dir)


def _holder_text(command: str) -> str:
    return json.dumps(
        {
            "command": command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )


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
    existed = os.path.lexists(key / LOCK_NAME)
    try:
        fd = os.open(
            key / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666 & ~_umask()
        )
    except OSError as exc:
        why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise OutputError(
            f"cannot lock output directory {path}: {key / LOCK_NAME}: {why}; remove it or choose another --out"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(
            f"cannot lock output directory {path}: {key / LOCK_NAME} is not a regular "
            "file; remove it or choose another --out"
        )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 4096, 0) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else b""
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise OutputError(f"cannot lock output directory {path}: {exc.strerror}") from None
        raise OutputError(
            f"output directory {path} is in use by {_describe_holder(holder)}; "
            "wait for it to finish or choose another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, _holder_text(command).encode(), 0)
    _held[key] = [fd, 1]
    _created[key] = not existed
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
def output_dir(path: str | Path, command: str | None = None, force: bool = True) -> Iterator[Path]:
    """Check, create and lock an output directory for the duration of the block (`force`:
    see check_output)."""
    path = check_output(path, force)
    lock_output(path, command or " ".join(["fxport", *sys.argv[1:]]))
    key = path.resolve()
    try:
        yield path
    except BaseException:
        # A command that failed leaves no lock file it made: the folder is not an fxport result
        # on that account (a `report` of a damaged document, a run refused before any output).
        if _created.get(key) and _held.get(key, [0, 0])[1] == 1:
            with contextlib.suppress(OSError):
                os.unlink(key / LOCK_NAME)
        raise
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
