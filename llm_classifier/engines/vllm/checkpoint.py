"""The dense checkpoint vLLM serves: the base, or the base with the fitted adapter merged.

vLLM loads a Hugging Face checkpoint directory. A classifier's prediction model is the base
as the transformers engine computes it (a ``quantization="4bit"`` base quantised to NF4 and
dequantised once) with the LoRA adapter merged; that model is written once to the cache
folder, under a key made of the base's fingerprint, the quantization and the adapter's sha256,
and reused by every later load.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_checkpoints import ResolvedModel, cache_dir


def adapter_sha256(adapter: dict[str, np.ndarray] | None, adapter_config: dict[str, Any] | None) -> str | None:
    """A content hash of the adapter's tensors (names, shapes, float32 values) and its configuration."""
    if adapter is None:
        return None
    digest = hashlib.sha256(json.dumps(adapter_config, sort_keys=True).encode())
    for name in sorted(adapter):
        tensor = np.ascontiguousarray(adapter[name], dtype=np.float32)
        digest.update(f"{name}:{tensor.shape}".encode())
        digest.update(tensor.tobytes())
    return digest.hexdigest()


def checkpoint_key(resolved: ResolvedModel, quantization: str | None, adapter_sha: str | None) -> str:
    """The cache folder name of the merged checkpoint for this base, quantization and adapter."""
    record = json.dumps([resolved.fingerprint, quantization, adapter_sha])
    return hashlib.sha256(record.encode()).hexdigest()[:24]


def serving_checkpoint(resolved: ResolvedModel, quantization: str | None, adapter: dict[str, np.ndarray] | None,
                       adapter_config: dict[str, Any] | None) -> str:
    """The checkpoint directory vLLM loads: the base itself when there is nothing to change, else a cached merge."""
    if quantization is None and adapter is None:
        return resolved.path
    target = cache_dir() / "vllm" / checkpoint_key(resolved, quantization, adapter_sha256(adapter, adapter_config))
    if (target / "config.json").is_file():
        return str(target)
    from ..hf_checkpoints import write_checkpoint_once

    write_checkpoint_once(target, lambda scratch: _write_merged(resolved, quantization, adapter, adapter_config, scratch))
    return str(target)


def _write_merged(resolved: ResolvedModel, quantization: str | None, adapter: dict[str, np.ndarray] | None,
                  adapter_config: dict[str, Any] | None, out: Path) -> None:
    """Build the prediction model as the transformers engine builds it (float32, on the CPU) and save it to ``out``."""
    import torch
    from transformers import AutoTokenizer

    from ..hf_models import prediction_model, quiet_transformers

    model = prediction_model(resolved.path, quantization=quantization, torch_dtype=torch.float32, device="cpu",
                             adapter=adapter, adapter_config=adapter_config)
    with quiet_transformers():
        model.save_pretrained(str(out))
        AutoTokenizer.from_pretrained(resolved.path).save_pretrained(str(out))
    (out / "llm_classifier_source.json").write_text(json.dumps(
        {"base": resolved.path, "fingerprint": resolved.fingerprint, "quantization": quantization,
         "adapter_sha256": adapter_sha256(adapter, adapter_config)}))
