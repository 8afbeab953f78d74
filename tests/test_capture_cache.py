"""The capture cache (fxport.capture.cache): a cached capture gives the documents a fresh one gives;
damaged, foreign and hostile entries are never trusted; concurrent writers leave one whole entry;
the key changes with the model's source, the inputs and torch's version."""

import importlib
import json
import sys
import threading
from pathlib import Path

import pytest
import torch

from fxport.capture.cache import CaptureCache, capture_key, key_digest, package_digest
from fxport.capture.loader import InputOptions, load_model, parse_input
from fxport.report.results import run_document
from fxport.run_options import RunOptions
from fxport.runner import run_model
from fxport.tracing import kept_ops, trace_cached

TIMING = {"seconds"}


def _stable(doc):
    """A run document without its timing fields."""
    if isinstance(doc, dict):
        return {k: _stable(v) for k, v in doc.items() if k not in TIMING}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


def _doc(model, dev, options, cache=None, memory="dram"):
    result = run_model(model, dev, options, RunOptions(memory=memory, values="none", capture_cache=cache))
    return json.dumps(_stable(run_document(result)), sort_keys=True)


@pytest.mark.parametrize(
    "model, options, memory",
    [
        ("siglip-tiny", InputOptions(shape=(1, 3, 32, 32)), "dram"),
        # A ResNet in L1 by default (resnet18: the same ops as resnet50, 3 runs of a third of its nodes)
        ("torchvision.models:resnet18", InputOptions(shape=(1, 3, 64, 64)), "l1"),
        pytest.param("resnet50", InputOptions(shape=(1, 3, 64, 64)), "l1", marks=pytest.mark.slow),
        ("tests.user_models:TwoInputs", InputOptions(source="tests.user_models:two_inputs_kwargs"), "dram"),
        (
            "tests.user_models:Embed",
            InputOptions(specs=(parse_input("2,5:int64:0..50"),), model_args={"vocab": 50}),
            "dram",
        ),
    ],
)
def test_a_cached_capture_gives_the_fresh_documents(model, options, memory, mock_device, tmp_path):
    fresh = _doc(model, mock_device, options, memory=memory)
    cache = CaptureCache(tmp_path)
    stored = _doc(model, mock_device, options, cache, memory)
    assert cache.stats.misses == 1 and cache.stats.hits == 0
    loaded = _doc(model, mock_device, options, cache, memory)
    assert cache.stats.hits == 1 and cache.stats.rejected == 0
    assert fresh == stored == loaded  # passes, plan, partition, memory analysis, verdicts, records


def _key_and_inputs(model="tests.user_models:TwoInputs", options=None):
    loaded = load_model(model, options or InputOptions(source="tests.user_models:two_inputs_kwargs"))
    key = capture_key(loaded.name, loaded.module, loaded.inputs, loaded.kwargs, loaded.repeated, kept_ops())
    return loaded, key


def _stored(tmp_path):
    loaded, key = _key_and_inputs()
    cache = CaptureCache(tmp_path)
    trace_cached(loaded.module, loaded.inputs, cache, loaded.name, kwargs=loaded.kwargs)
    path = cache.path(key_digest(key))
    assert cache.stats.misses == 1 and path.is_file()
    return loaded, key, path


def _load(loaded, key, root):
    cache = CaptureCache(root)
    return cache, cache.load(key, loaded.inputs, loaded.kwargs, loaded.name)


def test_damaged_or_foreign_entries_are_ignored_and_rewritten(tmp_path, capsys):
    loaded, key, path = _stored(tmp_path)
    good = path.read_text()
    doc = json.loads(good)
    for text in [
        "{not json",
        json.dumps({**doc, "schema": "other/1"}),
        json.dumps({**doc, "key": {**doc["key"], "torch": "0.0"}}),
        json.dumps(
            {
                **doc,
                "state": {
                    "w": {"shape": [2], "stride": [1], "dtype": "torch.float32", "param": True, "requires_grad": False}
                },
            }
        ),
    ]:
        path.write_text(text)
        cache, cap = _load(loaded, key, tmp_path)
        assert cap is None and cache.stats.rejected == 1
        assert "capture cache entry" in capsys.readouterr().err  # one line says so
        # The fresh capture rewrites it, and it is used next time.
        cache = CaptureCache(tmp_path)
        trace_cached(loaded.module, loaded.inputs, cache, loaded.name, kwargs=loaded.kwargs)
        assert cache.stats.misses == 1 and _load(loaded, key, tmp_path)[1] is not None


def _hostile(doc: dict, how: str) -> dict:
    doc = json.loads(json.dumps(doc))
    nodes = doc["program"]["graph_module"]["graph"]["nodes"]
    witness = "/tmp/fxport-capture-cache-pwned"
    if how == "target":  # a call of an arbitrary function
        nodes[0]["target"] = "torch.load"
    elif how == "builtin":
        nodes[0]["target"] = "builtins.eval"
    elif how == "ranges":
        doc["program"]["range_constraints"] = {"s0": {"min_val": 0, "max_val": 4}}
    elif how == "sympy":  # sympy.sympify evaluates text
        meta = doc["program"]["graph_module"]["graph"]["tensor_values"]
        first = next(iter(meta.values()))
        first["sizes"][0] = {"as_expr": {"expr_str": f"__import__('os').system('touch {witness}')"}}
    elif how == "name":  # fx generates Python source from node names
        nodes[0]["outputs"][0]["as_tensor"]["name"] = f"x = __import__('os').system('touch {witness}')"
    elif how == "newline":  # ... and stack-trace summaries in comments
        nodes[0]["metadata"]["stack_trace"] = (
            f'File "a.py", line 1, in f\r__import__("os").system("touch {witness}")\n    x'
        )
    elif how == "dtype":
        name = next(iter(doc["state"]))
        doc["state"][name]["dtype"] = "__import__('os')"
    elif how == "bytes":  # a real tensor whose bytes do not match its shape
        name = next(iter(doc["state"]))
        doc["state"][name]["data"] = "AAAA"
    return doc


@pytest.mark.parametrize("how", ["target", "builtin", "ranges", "sympy", "name", "newline", "dtype", "bytes"])
def test_a_hostile_entry_never_runs_code(how, tmp_path):
    witness = Path("/tmp/fxport-capture-cache-pwned")
    witness.unlink(missing_ok=True)
    loaded, key, path = _stored(tmp_path)
    path.write_text(json.dumps(_hostile(json.loads(path.read_text()), how)))
    cache, cap = _load(loaded, key, tmp_path)
    assert cap is None and cache.stats.rejected == 1
    assert not witness.exists()
    # Entries stay in their directory: the path is the key's digest, nothing read names a file.
    assert {p.parent.parent for p in tmp_path.rglob("*.json")} == {tmp_path}


def test_concurrent_writers_leave_one_whole_entry(tmp_path):
    loaded, key = _key_and_inputs()
    cap = trace_cached(loaded.module, loaded.inputs, None, loaded.name, kwargs=loaded.kwargs)
    caches = [CaptureCache(tmp_path) for _ in range(6)]
    threads = [threading.Thread(target=c.store, args=(key, cap)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = list(tmp_path.rglob("*"))
    assert [p for p in files if p.is_file()] == [caches[0].path(key_digest(key))]  # no temp files left
    _cache, again = _load(loaded, key, tmp_path)
    assert again is not None and [r.to_dict() for r in again.records] == [r.to_dict() for r in cap.records]


def test_the_key_changes_with_source_inputs_and_torch(tmp_path, monkeypatch):
    package = tmp_path / "capkey_pkg"
    package.mkdir()
    source = "import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        return x * 2\n"
    (package / "__init__.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("capkey_pkg")
    model = module.M()
    x = torch.empty(2, 3, device="meta")
    base = capture_key("capkey_pkg:M", model, (x,), {}, (), kept_ops())
    assert base == capture_key("capkey_pkg:M", model, (x,), {}, (), kept_ops())
    # The model's source
    (package / "__init__.py").write_text(source.replace("x * 2", "x * 3"))
    assert capture_key("capkey_pkg:M", model, (x,), {}, (), kept_ops()) != base
    assert package_digest("capkey_pkg") != base["sources"]["capkey_pkg"]
    (package / "__init__.py").write_text(source)
    assert capture_key("capkey_pkg:M", model, (x,), {}, (), kept_ops()) == base
    # An input shape, an input dtype, a keyword input
    assert capture_key("capkey_pkg:M", model, (torch.empty(2, 4, device="meta"),), {}, (), kept_ops()) != base
    assert capture_key("capkey_pkg:M", model, (x.half(),), {}, (), kept_ops()) != base
    assert capture_key("capkey_pkg:M", model, (), {"x": x}, (), kept_ops()) != base
    # torch's version
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert capture_key("capkey_pkg:M", model, (x,), {}, (), kept_ops()) != base
    sys.modules.pop("capkey_pkg", None)


@pytest.mark.slow  # two sweeps; default twin: a cached capture gives the fresh documents
def test_a_warm_sweep_loads_its_captures_and_gives_the_same_documents(tmp_path, capsys):
    from fxport.cli import main

    def documents(out):
        return {
            p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.json")) if p.name != "timing.json"
        }

    entry = ["siglip-tiny", "--input-shape", "1,3,32,32", "-j", "1", "--cache", str(tmp_path / "cache")]
    assert main(["sweep", *entry, "--out", str(tmp_path / "cold")]) == 0
    assert main(["sweep", *entry, "--out", str(tmp_path / "warm")]) == 0
    out = capsys.readouterr().out
    assert "capture cache: 0 of 1 captures loaded" in out and "capture cache: 1 of 1 captures loaded" in out
    timing = json.loads((tmp_path / "warm" / "timing.json").read_text())
    assert timing["capture_cache"]["hits"] == 1 and timing["capture_cache"]["hit_rate"] == 1.0
    assert documents(tmp_path / "cold") == documents(tmp_path / "warm")
    assert main(["sweep", *entry, "--no-capture-cache", "--out", str(tmp_path / "off")]) == 0
    assert "capture cache:" not in capsys.readouterr().out
    assert documents(tmp_path / "off") == documents(tmp_path / "cold")
