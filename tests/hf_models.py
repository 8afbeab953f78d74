"""Hugging Face transformers models built from small configs (no download), and their inputs,
named on the command line as `tests.hf_models:NAME` (`--inputs tests.hf_models:lm_inputs`)."""

import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

VOCAB = 512
SEQ = 16


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
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        use_cache=False,
    )
    return LlamaForCausalLM(config)


def lm_inputs() -> dict:
    """Keyword inputs: integer token ids, and a mask that pads the last quarter of the second row."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, VOCAB, (2, SEQ), generator=generator)
    attention_mask = torch.ones(2, SEQ, dtype=torch.int64)
    attention_mask[1, -SEQ // 4 :] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}
