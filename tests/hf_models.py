"""Hugging Face transformers models built from small configs (no download), and their inputs,
named on the command line as `tests.hf_models:NAME` (`--inputs tests.hf_models:lm_inputs`)."""

import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

VOCAB = 512
SEQ = 16
# The small decoder all the Llama-family configs share (each model keeps its own defaults otherwise).
DECODER = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}


def bert_tiny() -> BertModel:
    """An encoder: token ids and an attention mask in, a ModelOutput of hidden states out."""
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    return BertModel(config, add_pooling_layer=True)


def llama_tiny() -> LlamaForCausalLM:
    """A decoder language model: token ids and an attention mask in, logits out."""
    config = LlamaConfig(**DECODER, use_cache=False)
    return LlamaForCausalLM(config)


def lm_inputs() -> dict:
    """Keyword inputs: integer token ids, and a mask that pads the last quarter of the second row."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, VOCAB, (2, SEQ), generator=generator)
    attention_mask = torch.ones(2, SEQ, dtype=torch.int64)
    attention_mask[1, -SEQ // 4 :] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def gpt2_tiny():
    """GPT-2 with its default settings (use_cache=True: the output holds a DynamicCache)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=64, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config)


def mistral_tiny():
    """Mistral with its default settings (use_cache=True, sliding window attention)."""
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(**DECODER)
    return MistralForCausalLM(config)


def qwen2_tiny():
    """Qwen2 with its default settings (use_cache=True)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**DECODER)
    return Qwen2ForCausalLM(config)


def ids_only() -> dict:
    """Keyword inputs: token ids, no attention mask (nothing padded)."""
    generator = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(0, VOCAB, (2, SEQ), generator=generator)}


def dpt_tiny():
    """DPT depth estimation (a ViT, then reassembly by transposed convolutions and a fusion
    decoder with bilinear align_corners=True upsampling)."""
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=64,
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[16, 32, 64, 64],
        fusion_hidden_size=32,
        head_in_index=-1,
    )
    return DPTForDepthEstimation(config)


def lm_inputs_left_padded() -> dict:
    """Keyword inputs padded on the left, as batched generation pads: the second row's first
    quarter is padding, so its first query rows have no key to attend to."""
    inputs = lm_inputs()
    inputs["attention_mask"] = torch.ones(2, SEQ, dtype=torch.int64)
    inputs["attention_mask"][1, : SEQ // 4] = 0
    return inputs
