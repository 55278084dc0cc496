"""Fixtures of the vLLM engine's tests: run in the environment that has vLLM (.venv-vllm).

tests/test_vllm_subprocess.py runs this folder there (not named tests/vllm: on the path it would pass for the vllm package) from the main suite; without vLLM the folder is skipped.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

# test_vllm_engine.py runs the contract tests of tests/contract/test_engine_contract.py, imported by module name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))

from llm_classifier.engines.vllm.engine import vllm_installed

if not vllm_installed():
    collect_ignore_glob = ["test_*.py"]  # the main environment: tests/test_vllm_subprocess.py runs them in .venv-vllm

#: vLLM's arguments in tests: no torch.compile (an engine starts in ~10 s instead of ~30 s), a 64 MiB KV cache.
ENGINE_ARGS = {"enforce_eager": True, "kv_cache_memory_bytes": 64 << 20}


@pytest.fixture(scope="session")
def vllm_tiny_model(tmp_path_factory, real_tokenizer_dir):
    """A 2-layer, 64-wide random Llama with SmolLM2's tokenizer, in a shape vLLM's CPU attention takes.

    vLLM's CPU attention kernels take head sizes of 32 and more (not the 16 of the suite's
    ``tiny_model``), so this one has 2 heads of 32 and one key-value head.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-llama-vllm")
    tokenizer = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
