"""End-to-end accuracy: PCC of every output leaf against fp32 torch, and whether that PCC can mean
anything.

A PCC of 1.0 says nothing when the reference itself does not move with the input: a randomly
initialised network whose output is the same for any image (a saturated head, a dead branch)
correlates perfectly with itself whatever the device computed in between. So the reference is
computed a second time on varied inputs (`vary_inputs`); an output that does not change by more
than one bf16 step is reported as "PCC uninformative", never as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fxport.capture.pytrees import map_tensors, named_leaves
from fxport.capture.records import TensorSpec
from fxport.runtime.pcc import agreement
from fxport.settings import PCC_THRESHOLD

# One bf16 step (8 significant bits): changes smaller than this, relative to the output's size,
# are below what the device can represent, so they cannot show whether the device got them right.
_BF16_STEP = 2.0 ** -8

NOT_DEPENDENT = "output does not depend on input"
CONSTANT = "reference output is constant"
# Outputs whose size follows the values (a detector's boxes after score thresholds and NMS)
DATA_DEPENDENT = "data-dependent size"


@dataclass(frozen=True)
class OutputCheck:
    """One output tensor of a run, compared with fp32 torch."""

    path: str  # "out", "out[0]", "out['logits']"
    spec: TensorSpec | None  # shape and dtype of the reference
    pcc: float | None  # vs fp32 torch; None when not computed (no values, no reference)
    informative: bool | None = None  # False: PCC says nothing (see note); None: not checked
    note: str = ""  # why it is uninformative, or why it was not checked

    def to_dict(self) -> dict:
        return {"path": self.path, **(self.spec.to_dict() if self.spec else {}),
                "pcc": None if self.pcc is None else round(self.pcc, 6),
                "informative": self.informative, "note": self.note}

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
    # Outputs of data-dependent size, not part of the verdict, each with what was found
    # ("out[0]['boxes']: data-dependent size: 7 vs 9 rows (run vs torch)")
    data_dependent: tuple[str, ...] = ()

    @classmethod
    def of(cls, checks: list[OutputCheck], threshold: float = PCC_THRESHOLD) -> "Accuracy":
        scored = [c for c in checks if c.shown_pcc is not None]
        failing = tuple(f"{c.path} {c.pcc:.6f} < {threshold}" for c in scored if not c.pcc >= threshold)
        verdict = "fail" if failing else "pass" if scored else "not checked"
        dependent = tuple(f"{c.path}: {c.note}" for c in checks if c.note.startswith(DATA_DEPENDENT))
        return cls(threshold, verdict, failing, dependent)

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "verdict": self.verdict, "failing": list(self.failing),
                "data_dependent": list(self.data_dependent)}


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
        if t.is_meta or t.numel() < 2 or torch.unique(t).numel() <= 2:
            return t
        flat = t.flatten()
        moved = flat[torch.randperm(flat.numel(), generator=generator)].reshape(t.shape)
        changed |= not torch.equal(moved, t)
        return moved

    return map_tensors(shuffle, tuple(args)), map_tensors(shuffle, dict(kwargs)), changed


def check_outputs(actual: Any, reference: Any, varied: Any = None,
                  data_dependent: bool = False) -> list[OutputCheck]:
    """PCC per output leaf of `actual` against `reference` (same pytree). With `varied` (the
    reference on varied inputs), leaves that do not depend on the inputs are marked uninformative.

    An output whose size differs from the reference's (a detector's boxes: how many survive the
    score threshold and NMS is decided by values) is not compared: "N vs M rows" is its result.
    `data_dependent` (host code between graphs selects by value, fxport.capture.pieces): an
    output whose size follows the input's values has its rows chosen by such selections, so a
    row-by-row PCC may pair different detections: shown, but not a verdict."""
    got = dict(named_leaves(actual, "out"))
    moved = dict(named_leaves(varied, "out")) if varied is not None else {}
    checks = []
    for path, ref in named_leaves(reference, "out"):
        if not isinstance(ref, torch.Tensor):
            continue
        out = got.get(path)
        spec = TensorSpec.of(ref)
        if isinstance(out, torch.Tensor) and tuple(out.shape) != tuple(ref.shape):
            checks.append(OutputCheck(path, spec, None, False, f"{DATA_DEPENDENT}: {_rows(out)} vs "
                                      f"{_rows(ref)} rows (run vs torch): not compared"))
            continue
        score = agreement(out, ref) if isinstance(out, torch.Tensor) else 0.0
        informative, note = _informative(ref, moved.get(path), varied is not None)
        selected = isinstance(moved.get(path), torch.Tensor) and tuple(moved[path].shape) != tuple(ref.shape)
        if data_dependent and selected:
            informative, note = False, (f"{DATA_DEPENDENT}: same count ({_rows(ref)} rows), PCC {score:.4f} "
                                        "by index, which may pair different selections: not a verdict")
        checks.append(OutputCheck(path, spec, score, informative, note))
    return checks


def _rows(t: torch.Tensor) -> int:
    return int(t.shape[0]) if t.dim() else 1


def unchecked_outputs(reference: Any, note: str) -> list[OutputCheck]:
    """Output leaves with no PCC (a verdict run, or a call the reference check skipped)."""
    return [OutputCheck(path, TensorSpec.of(leaf), None, None, note)
            for path, leaf in named_leaves(reference, "out") if isinstance(leaf, torch.Tensor)]


def _informative(ref: torch.Tensor, varied: Any, checked: bool) -> tuple[bool | None, str]:
    if ref.numel() == 0:
        return False, "empty: nothing to compare"
    exact = ref.dtype == torch.bool or not ref.is_floating_point()
    r = ref.detach().to(torch.float64).flatten()
    if not exact and r.numel() >= 2 and float(r.std()) <= _BF16_STEP * float(r.abs().max()):
        return False, CONSTANT
    if not checked:
        return None, "not checked: no input could be varied"
    if not isinstance(varied, torch.Tensor) or tuple(varied.shape) != tuple(ref.shape):
        return True, ""  # the output's shape follows the input's values: it depends on them
    v = varied.detach().to(torch.float64).flatten()
    if exact:
        return (False, NOT_DEPENDENT) if torch.equal(r, v) else (True, "")
    size = float(r.norm())
    change = float((r - v).norm())
    return (False, NOT_DEPENDENT) if change <= _BF16_STEP * size else (True, "")
