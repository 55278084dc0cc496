"""Shared fixtures: a tiny random Llama with the default model's real tokenizer."""

from __future__ import annotations

import warnings

import pytest

SENTIMENT_X = [
    "a wonderful, moving film",
    "dull, long and badly acted",
    "great fun from start to finish",
    "an awful waste of time",
    "I loved every minute",
    "boring and predictable",
    "brilliant performances all round",
    "the worst film this year",
]
SENTIMENT_Y = ["positive", "negative"] * 4


@pytest.fixture(scope="session")
def real_tokenizer_dir():
    """The default model's dense checkpoint directory (converted once from the packaged GGUF)."""
    from llm_classifier.engines.hf_checkpoints import resolve_model

    return resolve_model("smollm2-135m-instruct").path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, real_tokenizer_dir):
    """Path of a 2-layer, 64-wide Llama built from a config, with SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def tiny_params(tiny_model):
    """Constructor arguments for a fast, exact (float32, unquantised) classifier on the tiny model."""
    return dict(model=tiny_model, quantization=None, dtype="float32", max_steps=3, batch_size=4, random_state=0)


@pytest.fixture
def sentiment():
    return list(SENTIMENT_X), list(SENTIMENT_Y)
