"""Classify TT-Metal / TT-NN error texts: which failure, with its numbers as fields.

A declarative list of patterns (name, kind, regex, field converters), tried in order, in the
manner of TT-XLA's and TT-Forge's failure checkers. Order matters: the allocator OOM arrives
wrapped in `TT_FATAL @ bank_manager.cpp:N: false` and the circular-buffer errors in `TT_THROW`,
so the specific patterns come before the generic TT_FATAL / TT_THROW ones.

Formats are those of the tt-metal sources (bank_manager.cpp, program.cpp, dataflow_buffer.cpp)
and were checked against errors raised by ttnn 0.81.1 on a mock device; older spellings
("bank size is only N B", no allocator statistics, no clash addresses) still match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable


class Kind(StrEnum):
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    CB_OVERFLOW = "CB_OVERFLOW"
    CB_CLASH = "CB_CLASH"
    VALIDATION = "VALIDATION"
    THROW = "THROW"
    BAD_ARGUMENTS = "BAD_ARGUMENTS"
    UNKNOWN = "UNKNOWN"


# The kinds that are verdicts on memory (the others say the op cannot run as configured)
MEMORY_KINDS = (Kind.OUT_OF_MEMORY.value, Kind.CB_CLASH.value, Kind.CB_OVERFLOW.value)


@dataclass(frozen=True)
class Pattern:
    name: str
    kind: Kind
    regex: re.Pattern[str]
    fields: dict[str, Callable[[str], object]]  # converters; unlisted groups stay text
    summary: Callable[[dict], str]


def _text(s: str) -> str:
    return s.strip()


def _clash_summary(f: dict) -> str:
    where = (
        # Not the program's number: TT-Metal counts programs per process, so it would make the same
        # clash read differently from run to run (it stays in the fields)
        f"{f['buffer_kind']} buffers of the op's program clash with L1 buffers on core range {f['core_range']}"
    )
    if "region_end" not in f:
        return where
    return (
        f"{where}: CB region ends at {f['region_end']:,}, an L1 buffer starts at "
        f"{f['l1_buffer_address']:,} (overlap {f['region_end'] - f['l1_buffer_address']:,} B)"
    )


def _oom_summary(f: dict) -> str:
    room = f.get("largest_free_block", f["bank_size"])
    return (
        f"{f['buffer_type']} out of memory: {f['requested']:,} B over {f['banks']} banks needs "
        f"{f['per_bank']:,} B per bank, bank size {f['bank_size']:,} B"
        + (f", largest free block {room:,} B" if "largest_free_block" in f else "")
        + f" (short by {f['per_bank'] - room:,} B per bank)"
    )


def _fatal_summary(word: str) -> Callable[[dict], str]:
    def summary(f: dict) -> str:
        where = f"{f['file'].rsplit('/', 1)[-1]}:{f['line']}"
        message = f.get("message", "").splitlines()
        return f"{word} at {where}: {f['condition']}" + (f": {message[0]}" if message else "")

    return summary


_ALLOCATOR_STATS = (
    r"(?: \(allocated: (?P<allocated>\d+) B, free: (?P<free>\d+) B, "
    r"largest free block: (?P<largest_free_block>\d+) B\))?"
)
_OOM_FIELDS = dict.fromkeys(
    ("requested", "banks", "per_bank", "bank_size", "allocated", "free", "largest_free_block"), int
)
_HEADER_FIELDS = {"file": _text, "line": int, "condition": _text, "message": _text}
# `TT_FATAL @ file:line: condition`, then optionally `info:` and a message up to the backtrace.
_HEADER = (
    r" @ (?P<file>[^\s:]+):(?P<line>\d+): (?P<condition>[^\n]*)"
    r"(?:\ninfo:\n(?P<message>.*?)(?=\nbacktrace:|\Z))?"
)

PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "allocator_oom",
        Kind.OUT_OF_MEMORY,
        re.compile(
            r"Out of Memory: Not enough space to allocate (?P<requested>\d+) B "
            r"(?P<buffer_type>[A-Z0-9_]+) buffer across (?P<banks>\d+) banks, where each "
            r"bank needs to store (?P<per_bank>\d+) B, but bank size is (?:only )?"
            r"(?P<bank_size>\d+) B" + _ALLOCATOR_STATS
        ),
        _OOM_FIELDS,
        _oom_summary,
    ),
    Pattern(
        "allocator_oom_with_dependencies",
        Kind.OUT_OF_MEMORY,
        re.compile(
            r"Out of Memory: Not enough space after considering dependencies to allocate "
            r"(?P<requested>\d+) B (?P<buffer_type>[A-Z0-9_]+)(?: buffer)? across "
            r"(?P<banks>\d+) banks \((?P<per_bank>\d+) B per bank\), bank size is "
            r"(?P<bank_size>\d+) B" + _ALLOCATOR_STATS
        ),
        _OOM_FIELDS,
        _oom_summary,
    ),
    # Any other allocator wording: still an OOM (not the TT_FATAL around it), numbers unknown.
    Pattern(
        "out_of_memory",
        Kind.OUT_OF_MEMORY,
        re.compile(r"Out of Memory:?[ \t]*(?P<message>[^\n]*)"),
        {},
        lambda f: f"out of memory: {f.get('message') or 'no details'}",
    ),
    Pattern(
        "cb_beyond_l1",
        Kind.CB_OVERFLOW,
        re.compile(
            r"Statically allocated (?P<buffer_kind>circular|dataflow) buffers on core range "
            r"(?P<core_range>.+?) grow to (?P<region_end>\d+) B which is beyond max L1 "
            r"size of (?P<max_l1>\d+) B"
        ),
        {"core_range": _text, "region_end": int, "max_l1": int},
        lambda f: (
            f"{f['buffer_kind']} buffers on core range {f['core_range']} grow to "
            f"{f['region_end']:,} B, beyond the {f['max_l1']:,} B of L1 "
            f"(over by {f['region_end'] - f['max_l1']:,} B)"
        ),
    ),
    Pattern(
        "cb_clash",
        Kind.CB_CLASH,
        re.compile(
            r"Statically allocated (?P<buffer_kind>circular|dataflow) buffers in program "
            r"(?P<program>\d+) clash with L1 buffers on core range (?P<core_range>.+?)"
            r"(?:\.\s+L1 buffer allocated at (?P<l1_buffer_address>\d+) and static \w+ "
            r"buffer region ends at (?P<region_end>\d+)|\.?[ \t]*$)",
            re.MULTILINE,
        ),
        {"program": int, "core_range": _text, "l1_buffer_address": int, "region_end": int},
        _clash_summary,
    ),
    Pattern(
        "bad_arguments",
        Kind.BAD_ARGUMENTS,
        re.compile(
            r"(?P<function>[\w.]+)\(\): incompatible function arguments\."
            r"(?:.*?(?:Called with:\s*|Invoked with(?: types)?:\s*)"
            r"(?P<called_with>[^\n]+))?",
            re.DOTALL,
        ),
        {"called_with": _text},
        lambda f: (
            f"{f['function']}() rejected its arguments"
            + (f": called as {f['called_with']}" if "called_with" in f else "")
        ),
    ),
    Pattern(
        "tt_fatal",
        Kind.VALIDATION,
        re.compile("TT_FATAL" + _HEADER, re.DOTALL),
        _HEADER_FIELDS,
        _fatal_summary("TT_FATAL"),
    ),
    Pattern(
        "tt_throw", Kind.THROW, re.compile("TT_THROW" + _HEADER, re.DOTALL), _HEADER_FIELDS, _fatal_summary("TT_THROW")
    ),
)

# Where the error was raised, added to every classification whose text carries the header.
_LOCATION = re.compile(r"TT_(?:FATAL|THROW) @ (?P<file>[^\s:]+):(?P<line>\d+):")


@dataclass(frozen=True)
class Classification:
    kind: Kind
    pattern: str | None  # name of the pattern that matched; None for UNKNOWN
    fields: dict
    summary: str  # one line

    def to_dict(self) -> dict:
        return {"kind": str(self.kind), "pattern": self.pattern, "fields": dict(self.fields), "summary": self.summary}


def _fields(match: re.Match[str], converters: dict[str, Callable[[str], object]]) -> dict:
    return {name: converters.get(name, _text)(value) for name, value in match.groupdict().items() if value is not None}


def classify(error: str | BaseException) -> Classification:
    """Classify an error text (or exception) into one Kind with its numbers as fields."""
    text = str(error)
    for pattern in PATTERNS:
        match = pattern.regex.search(text)
        if match is None:
            continue
        fields = _fields(match, pattern.fields)
        location = _LOCATION.search(text)
        if location is not None and "file" not in fields:
            fields["location"] = f"{location['file']}:{location['line']}"
        return Classification(pattern.kind, pattern.name, fields, pattern.summary(fields))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    summary = (f"{type(error).__name__}: " if isinstance(error, BaseException) else "") + first
    return Classification(Kind.UNKNOWN, None, {}, summary[:300] or "empty error text")
