"""PI0 and SigLIP zoo models: configs, a real CPU run at tiny size, and what capture sees.

Imports models.pi0 / models.siglip directly (not models.zoo), so these tests depend on nothing but
the modules under test and the registry.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.fx._lazy_graph_module import _use_lazy_graph_module

import fxport_models
from fxport_models.gemma import Gemma, GemmaConfig
from fxport_models.pi0 import PI0, PI0Config, make_inputs, param_count
from fxport_models.siglip import SiglipConfig, SiglipVisionTower

TOP_LEVEL = {"siglip", "projector", "gemma", "expert", "prefix", "suffix", "denoise"}


@pytest.fixture(scope="module")
def tiny() -> tuple[PI0Config, PI0]:
    torch.manual_seed(0)
    cfg = PI0Config.preset("pi0-tiny")
    return cfg, PI0(cfg).eval()


def test_presets_are_dataclasses():
    for cfg in (PI0Config.preset("pi0"), PI0Config.preset("pi0-tiny")):
        assert dataclasses.is_dataclass(cfg)
        assert all(dataclasses.is_dataclass(c) for c in (cfg.vision, cfg.vlm, cfg.expert))
    full = PI0Config.preset("pi0")
    assert (full.vision.width, full.vision.depth, full.vision.num_patches) == (1152, 27, 256)
    assert (full.vlm.width, full.vlm.depth, full.vlm.vocab_size) == (2048, 18, 257152)
    assert (full.expert.width, full.expert.mlp_dim, full.expert.vocab_size) == (1024, 4096, 0)
    assert (full.horizon, full.action_dim, full.num_steps, full.prefix_len) == (50, 32, 10, 3 * 256 + 48)
    assert PI0Config() == full
    with pytest.raises(KeyError):
        PI0Config.preset("pi1")


def test_config_rejects_an_expert_that_cannot_attend_to_the_vlm():
    with pytest.raises(ValueError, match="depth"):
        PI0Config(expert=GemmaConfig.preset("gemma-300m", depth=6))
    with pytest.raises(ValueError, match="attn_impl"):
        SiglipConfig(attn_impl="flash")


def test_full_pi0_parameter_count():
    assert 3.1e9 <= param_count("pi0") <= 3.4e9


def test_tiny_sample_actions_shape_and_determinism(tiny):
    cfg, model = tiny
    inputs = make_inputs(cfg, batch=2)
    actions = model(*inputs)
    assert actions.shape == (2, cfg.horizon, cfg.action_dim)
    assert torch.isfinite(actions).all()
    assert torch.equal(actions, model.sample_actions(*inputs))


def test_padding_is_masked_out(tiny):
    cfg, model = tiny
    images, image_masks, lang_tokens, lang_masks, state, noise = make_inputs(cfg, batch=1)
    image_masks[:, -1] = False
    actions = model(images, image_masks, lang_tokens, lang_masks, state, noise)
    # Whatever sits in a missing camera or in padded prompt slots must not matter (and must not
    # turn fully masked rows into NaN).
    images2, lang_tokens2 = images.clone(), lang_tokens.clone()
    images2[:, -1] = torch.randn_like(images2[:, -1])
    lang_tokens2[~lang_masks] = (lang_tokens2[~lang_masks] + 1) % cfg.vlm.vocab_size
    assert torch.isfinite(actions).all()
    torch.testing.assert_close(model(images2, image_masks, lang_tokens2, lang_masks, state, noise), actions)


def test_sdpa_and_eager_attention_agree(tiny):
    cfg, model = tiny
    eager = PI0(cfg.with_attn_impl("eager")).eval()
    eager.load_state_dict(model.state_dict())
    inputs = make_inputs(cfg, batch=1)
    torch.testing.assert_close(eager(*inputs), model(*inputs), rtol=1e-4, atol=1e-5)


def test_gemma_cache_matches_a_full_pass():
    # PI0's denoise steps rely on this: queries over cached keys/values == the same queries in one pass.
    torch.manual_seed(0)
    gemma = Gemma(GemmaConfig.preset("tiny")).eval()
    tokens = torch.randint(0, 1024, (2, 12))
    embeds, positions = gemma.embed_tokens(tokens), torch.arange(12).expand(2, 12)
    future = ~torch.ones(12, 12, dtype=torch.bool).tril()
    causal = torch.zeros(12, 12).masked_fill(future, torch.finfo(torch.float32).min)[None, None]
    cos, sin = rope = gemma.rotary(positions, torch.float32)
    head, tail = (cos[..., :8, :], sin[..., :8, :]), (cos[..., 8:, :], sin[..., 8:, :])
    full, _ = gemma(embeds, rope, causal)
    _, cache = gemma(embeds[:, :8], head, causal[..., :8, :8], kv_only=True)
    rest, _ = gemma(embeds[:, 8:], tail, causal[..., 8:, :], cache)
    torch.testing.assert_close(rest, full[:, 8:])


def test_export_of_tiny_attributes_ops_to_every_part():
    entry = fxport_models.get("pi0-tiny")
    with torch.device("meta"):
        model = entry.module()
        inputs = entry.inputs(device="meta")
    with _use_lazy_graph_module(True):
        ep = torch.export.export(model, inputs, strict=False)
    paths = {
        path.split(".")[0]
        for node in ep.graph.nodes
        if node.op == "call_function"
        for path, _ in node.meta.get("nn_module_stack", {}).values()
    }
    assert TOP_LEVEL <= paths
    targets = {node.target for node in ep.graph.nodes if node.op == "call_function"}
    assert torch.ops.aten.scaled_dot_product_attention.default in targets
    (out,) = (node for node in ep.graph.nodes if node.op == "output")
    assert tuple(out.args[0][0].meta["val"].shape) == (1, 4, 6)


def test_registry_entries():
    expected = {
        "pi0": ("vla", (1, 3, 224, 224), "zoo"),
        "pi0-tiny": ("vla", (1, 3, 56, 56), "tiny"),
        "siglip": ("vision-encoder", (1, 3, 224, 224), "zoo"),
        "siglip-tiny": ("vision-encoder", (1, 3, 56, 56), "tiny"),
    }
    for name, (family, shape, tag) in expected.items():
        entry = fxport_models.get(name)
        assert (entry.family, entry.input_shape, entry.build_on) == (family, shape, "meta")
        assert tag in entry.tags
    assert fxport_models.get("pi0").repeated == ("denoise",)
    inputs = fxport_models.get("pi0").inputs((2, 3, 224, 224), "meta")
    images, image_masks, lang_tokens, lang_masks, state, noise = inputs
    assert images.shape == (2, 3, 3, 224, 224) and image_masks.dtype == torch.bool
    assert lang_tokens.shape == (2, 48) and lang_tokens.dtype == torch.int64 and lang_masks.dtype == torch.bool
    assert state.shape == (2, 32) and noise.shape == (2, 50, 32)


def test_siglip_tiny_runs():
    entry = fxport_models.get("siglip-tiny")
    torch.manual_seed(0)
    tower = entry.module()
    assert isinstance(tower, SiglipVisionTower)
    (images,) = entry.inputs()
    assert tower(images).shape == (1, 16, 32)
    with pytest.raises(ValueError, match="square"):
        entry.module((1, 3, 56, 70))
