"""End-to-end accuracy: PCC of every output leaf against fp32 torch, and whether that PCC can mean
anything.

A PCC of 1.0 says nothing when the reference itself does not move with the input: a randomly
initialised network whose output is the same for any image (a saturated head, a dead branch)
correlates perfectly with itself whatever the device computed in between. So the reference is
computed a second time on varied inputs (`vary_inputs`); an output that does not change by more
than one bf16 step is reported as "PCC uninformative", never as a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from fxport.capture.pytrees import map_tensors, named_leaves
from fxport.capture.records import TensorSpec
from fxport.runtime.pcc import CHUNK, Moments, agreement, chunks, nonfinite_mismatch
from fxport.settings import PCC_THRESHOLD

# One bf16 step (8 significant bits): changes smaller than this, relative to the output's size,
# are below what the device can represent, so they cannot show whether the device got them right.
_BF16_STEP = 2.0**-8

NOT_DEPENDENT = "output does not depend on input"
CONSTANT = "reference output is constant"
NON_FINITE_REFERENCE = "fp32 reference has {count} NaN/inf values (first at {first})"
NON_FINITE_OUTPUT = "{count} NaN/inf values differ from the reference (first at {first})"


@dataclass(frozen=True)
class OutputCheck:
    """One output tensor of a run, compared with fp32 torch."""

    path: str  # "out", "out[0]", "out['logits']"
    spec: TensorSpec | None  # shape and dtype of the reference
    pcc: float | None  # vs fp32 torch; None when not computed (no values, no reference)
    informative: bool | None = None  # False: PCC says nothing (see note); None: not checked
    note: str = ""  # why it is uninformative, or why it was not checked

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            **(self.spec.to_dict() if self.spec else {}),
            "pcc": None if self.pcc is None else round(self.pcc, 6),
            "informative": self.informative,
            "note": self.note,
        }

    @property
    def shown_pcc(self) -> float | None:
        """The PCC a report may show as a figure: None when it is uninformative."""
        return None if self.informative is False else self.pcc


@dataclass(frozen=True)
class Accuracy:
    """The end-to-end verdict: "pass" when every informative output reaches the threshold, "fail"
    when one does not (named in `failing`), "not checked" when no output has an informative PCC
    (a verdict run with no values, or outputs that do not depend on the input)."""

    threshold: float
    verdict: str
    failing: tuple[str, ...] = ()  # "out[0] 0.554 < 0.99"

    @classmethod
    def of(cls, checks: list[OutputCheck], threshold: float = PCC_THRESHOLD) -> "Accuracy":
        scored = [c for c in checks if c.shown_pcc is not None]
        failing = tuple(
            f"{c.path} {c.pcc:.6f} < {threshold}" + (f" ({c.note})" if c.note else "")
            for c in scored
            if not c.pcc >= threshold
        )
        verdict = "fail" if failing else "pass" if scored else "not checked"
        return cls(threshold, verdict, failing)

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "verdict": self.verdict, "failing": list(self.failing)}


@dataclass(frozen=True)
class ControlValue:
    """A graph output that Python branches on (a bool or 0-d tensor): the device's value and the
    exact fp32 host value, which is the one handed back."""

    path: str  # "out[0]"
    device: float | bool | list
    host: float | bool | list
    agreed: bool  # bools and integers equal; floats within one bf16 step

    @classmethod
    def of(cls, path: str, device: torch.Tensor, host: torch.Tensor) -> "ControlValue":
        d, h = device.detach().cpu(), host.detach().cpu()
        if h.dtype == torch.bool or not h.is_floating_point():
            agreed = torch.equal(d.to(h.dtype), h)
        else:
            scale = max(float(h.abs().max()) if h.numel() else 0.0, 1e-30)
            agreed = bool(((d.double() - h.double()).abs() <= _BF16_STEP * scale).all())
        return cls(path, d.tolist(), h.tolist(), agreed)

    def to_dict(self) -> dict:
        return {"path": self.path, "device": self.device, "host": self.host, "agreed": self.agreed}


def vary_inputs(args: tuple, kwargs: dict, seed: int = 1) -> tuple[tuple, dict, bool]:
    """The same inputs with their values moved: each tensor with more than two distinct values
    is shuffled (same values, same range, different places: token ids stay valid ids, images stay
    images); masks and flags (two values or fewer) are kept, so the call stays well-formed.
    Returns (args, kwargs, whether anything changed)."""
    generator = torch.Generator().manual_seed(seed)
    changed = False

    def shuffle(t: torch.Tensor) -> torch.Tensor:
        nonlocal changed
        if t.is_meta or t.numel() < 2 or not _more_than_two_values(t):
            return t
        moved = _shuffled(t, generator)
        changed |= not torch.equal(moved, t)
        return moved

    return map_tensors(shuffle, tuple(args)), map_tensors(shuffle, dict(kwargs)), changed


# Above this many elements a shuffle permutes rows and columns of a [rows, SHUFFLE_COLUMNS] view
# instead of every element: index tensors of kilobytes, not an int64 permutation 2x the input's size.
SHUFFLE_COLUMNS = 4096


def _shuffled(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flat = t.reshape(-1)
    n = flat.numel()
    if n <= SHUFFLE_COLUMNS * 64:
        return flat[torch.randperm(n, generator=generator)].reshape(t.shape)
    head = n - n % SHUFFLE_COLUMNS
    grid = flat[:head].view(head // SHUFFLE_COLUMNS, SHUFFLE_COLUMNS)
    rows = torch.randperm(grid.shape[0], generator=generator)
    columns = torch.randperm(SHUFFLE_COLUMNS, generator=generator)
    out = torch.empty_like(flat)
    moved = out[:head].view(grid.shape)
    for start in range(0, grid.shape[0], 1024):  # a block of rows at a time: no full-size temporary
        moved[start : start + 1024] = grid[rows[start : start + 1024]][:, columns]
    out[head:] = flat[head:][torch.randperm(n - head, generator=generator)]
    return out.view(t.shape)


def _more_than_two_values(t: torch.Tensor) -> bool:
    """Whether `t` holds three distinct values or more, without sorting it (torch.unique of a
    1.6 GB tensor takes minutes and gigabytes)."""
    flat = t.reshape(-1)
    first = flat[0]
    others = flat[flat != first] if flat.numel() <= CHUNK else None
    if others is None:  # streaming: the first value different from `first`, then a third one
        second = None
        for start in range(0, flat.numel(), CHUNK):
            piece = flat[start : start + CHUNK]
            piece = (
                piece[(piece != first) & ~torch.isnan(piece)] if piece.is_floating_point() else piece[piece != first]
            )
            if second is None and piece.numel():
                second = piece[0]
            if second is not None and bool((piece != second).any()):
                return True
        return False
    if t.is_floating_point():
        others = others[~torch.isnan(others)]
    return others.numel() > 0 and bool((others != others[0]).any())


@dataclass(frozen=True)
class Dependence:
    """Whether each output leaf (by path) depends on the inputs: (informative, note), as
    `output_dependence` found it. Small: the varied outputs themselves need not be kept."""

    by_path: dict


def output_dependence(reference: Any, varied: Any) -> Dependence:
    """Compare the reference with the outputs on varied inputs (None: no input could be varied)."""
    moved = dict(named_leaves(varied, "out")) if varied is not None else {}
    return Dependence(
        {
            path: _informative(ref, moved.get(path), varied is not None)
            for path, ref in named_leaves(reference, "out")
            if isinstance(ref, torch.Tensor)
        }
    )


def check_outputs(actual: Any, reference: Any, varied: Any = None) -> list[OutputCheck]:
    """PCC per output leaf of `actual` against `reference` (same pytree). With `varied` (the
    reference on varied inputs, or what `output_dependence` found in it), leaves that do not
    depend on the inputs are marked uninformative."""
    got = dict(named_leaves(actual, "out"))
    dependence = varied if isinstance(varied, Dependence) else output_dependence(reference, varied)
    checks = []
    for path, ref in named_leaves(reference, "out"):
        if not isinstance(ref, torch.Tensor):
            continue
        out = got.get(path)
        score = agreement(out, ref) if isinstance(out, torch.Tensor) else 0.0
        informative, note = dependence.by_path.get(path, (None, "not checked: no input could be varied"))
        bad_ref = _nonfinite(ref)
        if bad_ref:  # the reference itself is no yardstick: never a pass
            informative, note = False, NON_FINITE_REFERENCE.format(count=bad_ref[0], first=bad_ref[1])
        elif isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(ref.shape):
            count, first = nonfinite_mismatch(out, ref)
            if count:  # NaN or inf where the reference is finite: fails, whatever the rest says
                score, informative = 0.0, True
                note = NON_FINITE_OUTPUT.format(count=count, first=list(first))
        checks.append(OutputCheck(path, TensorSpec.of(ref), score, informative, note))
    return checks


def _nonfinite(ref: torch.Tensor) -> tuple[int, list[int]] | None:
    """(count, first multi-index) of the NaN and inf values of a reference, or None."""
    if not ref.is_floating_point():
        return None
    flat, count, first = ref.detach().reshape(-1), 0, None
    for start in range(0, flat.numel(), CHUNK):  # streamed: no full-size mask of a huge output
        bad = ~torch.isfinite(flat[start : start + CHUNK])
        found = int(bad.sum())
        if found and first is None:
            first = start + int(bad.nonzero()[0, 0])
        count += found
    if not count:
        return None
    return count, [int(i) for i in torch.unravel_index(torch.tensor(first), tuple(ref.shape))]


def unchecked_outputs(reference: Any, note: str) -> list[OutputCheck]:
    """Output leaves with no PCC (a verdict run, or a call the reference check skipped)."""
    return [
        OutputCheck(path, TensorSpec.of(leaf), None, None, note)
        for path, leaf in named_leaves(reference, "out")
        if isinstance(leaf, torch.Tensor)
    ]


def _informative(ref: torch.Tensor, varied: Any, checked: bool) -> tuple[bool | None, str]:
    exact = ref.dtype == torch.bool or not ref.is_floating_point()
    comparable = isinstance(varied, torch.Tensor) and tuple(varied.shape) == tuple(ref.shape)
    stats = None
    if not exact:  # one streaming pass in float64 (fxport.runtime.pcc): spread, size, change
        stats = Moments()
        for v, r in chunks(varied if comparable else ref, ref):
            stats.add(v, r)
    if stats is not None and ref.numel() >= 2 and stats.std_e <= _BF16_STEP * stats.largest_e:
        return False, CONSTANT
    if not checked:
        return None, "not checked: no input could be varied"
    if not comparable:
        return True, ""  # the output's shape follows the input's values: it depends on them
    if exact:
        return (False, NOT_DEPENDENT) if torch.equal(ref, varied.to(ref.dtype)) else (True, "")
    size, change = math.sqrt(stats.square_e), math.sqrt(stats.square_change)
    return (False, NOT_DEPENDENT) if change <= _BF16_STEP * size else (True, "")
