"""How many workers this host can take: one per core, as long as their memory fits.

Each entry's peak resident memory is measured in its worker (fxport.fleet.worker) and kept in the
sweep's timing.json; the next sweep of that directory plans with it. An entry not measured yet is
assumed to need DEFAULT_NEED, the largest peak measured for a zoo entry in a warm worker (1.7 GB,
YOLOv12x at 2176x3840 after the rest of the zoo) rounded up.
"""

from __future__ import annotations

import os

GIB = 1 << 30
DEFAULT_NEED = 2 * GIB


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def need(keys: list[str], measured: dict[str, dict]) -> int:
    """Memory one worker needs for these entries: the largest measured peak among them (a
    worker runs one entry at a time), DEFAULT_NEED for any not measured."""
    peaks = []
    for k in keys:
        peak = (measured.get(k) or {}).get("peak_rss")
        peaks.append(peak if isinstance(peak, int) and not isinstance(peak, bool) and peak > 0 else DEFAULT_NEED)
    return max(peaks, default=DEFAULT_NEED)


def choose_workers(
    requested: int | None, keys: list[str], measured: dict[str, dict], available: int | None = None
) -> tuple[int, str]:
    """(workers, a note for the user or ""). Default: one per core, never more than the entries
    nor more than the available memory holds; an explicit `requested` beyond the memory is cut
    down to what fits, and said so, rather than letting workers swap or be OOM-killed."""
    available = available_memory() if available is None else available
    per_worker = need(keys, measured)
    fits = max(1, available // per_worker) if available else None
    wanted = requested or cores()
    workers = max(1, min(wanted, len(keys) or 1, fits or wanted))
    note = ""
    if available is not None and available < per_worker:
        note = (
            f"one worker may need {per_worker / GIB:.1f} GiB (peak measured per entry) and only "
            f"{available / GIB:.1f} GiB is available"
        )
    elif fits is not None and min(wanted, len(keys)) > fits:
        note = (
            f"running {workers} workers, not {wanted}: each needs up to {per_worker / GIB:.1f} GiB "
            f"(peak measured per entry) and {available / GIB:.1f} GiB is available"
        )
    return workers, note
