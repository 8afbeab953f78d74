"""Comparisons and input variation that stream over huge activations: the same answers as the
whole-tensor formulas, without full-size temporaries (the memory itself: bench/elementwise_memory.py)."""

import pytest
import torch

from fxport.runtime import accuracy
from fxport.runtime import pcc as pcc_module
from fxport.runtime.accuracy import NOT_DEPENDENT, output_dependence, vary_inputs
from fxport.runtime.pcc import pcc


def _whole(a: torch.Tensor, e: torch.Tensor) -> float:
    a, e = a.double().flatten(), e.double().flatten()
    a, e = a - a.mean(), e - e.mean()
    return float((a @ e) / (a.norm() * e.norm()))


@pytest.mark.parametrize("size", [7, 1000, 3 * 1024 + 5])
@pytest.mark.parametrize("offset", [0.0, 10.0])  # 10: sums of squares would cancel
def test_streaming_pcc_matches_the_whole_tensor_formula(monkeypatch, size, offset):
    monkeypatch.setattr(pcc_module, "CHUNK", 256)  # many chunks, a ragged last one
    monkeypatch.setattr(pcc_module.chunks, "__defaults__", (256,))
    g = torch.Generator().manual_seed(size)
    e = torch.randn(size, generator=g) + offset
    a = e + 0.3 * torch.randn(size, generator=g)
    assert pcc(a, e) == pytest.approx(_whole(a, e), abs=1e-9)
    assert pcc(a.bfloat16(), e) == pytest.approx(_whole(a.bfloat16(), e), abs=1e-9)  # no fp32 copy needed


def test_streaming_pcc_keeps_the_degenerate_and_non_finite_rules(monkeypatch):
    monkeypatch.setattr(pcc_module.chunks, "__defaults__", (16,))
    flat = torch.full((100,), 0.5)
    close, far = flat.clone(), flat.clone()
    close[3] += 0.001  # within a bf16 step of a constant: agrees
    far[3] += 0.1
    assert pcc(close, flat) == 1.0 and pcc(far, flat) == 0.0
    x = torch.randn(100)
    y = x.clone()
    y[50] = float("nan")
    assert pcc(y, x) == 0.0 and pcc(x, x) == 1.0


def test_shuffle_of_a_large_input_is_a_permutation_without_a_full_index():
    x = torch.randn(4096 * 100 + 17)  # the row/column shuffle, and a ragged tail
    (moved,), _, changed = vary_inputs((x,), {})
    assert changed and moved.shape == x.shape
    assert torch.equal(moved.sort().values, x.sort().values)
    assert (moved != x).float().mean() > 0.9


def test_two_valued_inputs_are_kept_and_three_values_are_found_streaming(monkeypatch):
    monkeypatch.setattr(accuracy, "CHUNK", 64)
    mask = (torch.arange(1000) % 2).float()
    (kept,), _, changed = vary_inputs((mask,), {})
    assert kept is mask and not changed
    mask[999] = 7.0  # a third value in the last chunk
    assert accuracy._more_than_two_values(mask)


def test_output_dependence_streams_and_names_outputs_that_ignore_inputs(monkeypatch):
    monkeypatch.setattr(pcc_module.chunks, "__defaults__", (64,))
    ref = torch.randn(1000)
    facts = output_dependence({"a": ref, "b": ref}, {"a": ref.clone(), "b": ref.flip(0)})
    assert facts.by_path["out['a']"] == (False, NOT_DEPENDENT)
    assert facts.by_path["out['b']"] == (True, "")


def test_a_large_reference_is_computed_after_the_execution(mock_device, monkeypatch):
    import fxport
    from fxport import runner

    monkeypatch.setattr(runner, "HOLD_REFERENCE_BYTES", 0)  # every reference is "large"
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU())
    result = fxport.run(model, torch.randn(4, 16), device="mock")
    assert result.output_pcc[0] > 0.99
    assert result.output_checks[0].informative
