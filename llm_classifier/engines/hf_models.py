"""Building the model an engine computes with from a Hugging Face checkpoint: shared by every HF-based engine.

The transformers engine trains and predicts with it; the vLLM engine writes the same
prediction model (the base as training saw it, a quantised base dequantised once, the LoRA
adapter merged) to the checkpoint it serves. Nothing is imported at module level: torch,
transformers, peft and bitsandbytes load inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["check_lora_adapter", "cpu_supports_bf16", "dequantize", "freeze", "load_base", "merge_adapter",
           "prediction_model", "quantization_config", "quiet_transformers"]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' / bitsandbytes' progress bars and info warnings inside the block."""
    from transformers.utils import logging as hf_logging

    previous_level = hf_logging.get_verbosity()
    previous_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    bnb_logger = logging.getLogger("bitsandbytes")
    bnb_level = bnb_logger.level
    bnb_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*gemm_4bit.*")
            warnings.filterwarnings("ignore", category=UserWarning, module="bitsandbytes")
            warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
            warnings.filterwarnings("ignore", category=FutureWarning, module="peft")
            yield
    finally:
        hf_logging.set_verbosity(previous_level)
        if previous_bars:
            hf_logging.enable_progress_bar()
        bnb_logger.setLevel(bnb_level)


def cpu_supports_bf16() -> bool:
    """True if this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def quantization_config(quantization: str | None, device: str, torch_dtype: Any) -> Any:
    """The ``BitsAndBytesConfig`` of ``quantization`` (``None``, ``"4bit"`` NF4 double-quantised, ``"8bit"``)."""
    import torch
    from transformers import BitsAndBytesConfig

    if quantization is None:
        return None
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            # bitsandbytes' CPU path has no float16 kernels
            bnb_4bit_compute_dtype=torch.float32 if (device == "cpu" and torch_dtype == torch.float16) else torch_dtype,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"Unknown quantization {quantization!r}")


def load_base(path: str, *, quantization: str | None, torch_dtype: Any, device: str, attn_implementation: str = "sdpa",
              trust_remote_code: bool = False) -> Any:
    """The base model at ``path`` as training sees it (quantised when asked), on ``device``."""
    from transformers import AutoModelForCausalLM

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch_dtype,
            quantization_config=quantization_config(quantization, device, torch_dtype),
            device_map=device if quantization else None,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
        )
    if not quantization:
        model.to(device)
    return model


def dequantize(model: Any, torch_dtype: Any) -> Any:
    """``model`` with its quantised weights dequantised once to ``torch_dtype`` (a plain dense model)."""
    with quiet_transformers():
        model = model.dequantize(dtype=torch_dtype)
    model.hf_quantizer = None
    model.is_quantized = False
    model.config.quantization_config = None
    if hasattr(model.config, "_pre_quantization_dtype"):
        del model.config._pre_quantization_dtype
    return model


def merge_adapter(model: Any, adapter: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
    """``model`` with the LoRA ``adapter`` (tensors by peft name, and its ``r``/``lora_alpha``/``target_modules``) merged."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    lora = LoraConfig(r=config["r"], lora_alpha=config["lora_alpha"], target_modules=config["target_modules"], lora_dropout=0.0, bias="none")
    peft_model = get_peft_model(model, lora)  # the caller silences peft's warnings
    result = set_peft_model_state_dict(peft_model, {name: torch.from_numpy(np.asarray(value)) for name, value in adapter.items()})
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"The adapter does not fit this model: unexpected weights {unexpected[:3]}...")
    return peft_model.merge_and_unload()


def prediction_model(path: str, *, quantization: str | None, torch_dtype: Any, device: str,
                     adapter: dict[str, np.ndarray] | None, adapter_config: dict[str, Any] | None,
                     attn_implementation: str = "sdpa", trust_remote_code: bool = False) -> Any:
    """The model a fitted classifier predicts with: the base as training saw it, dequantised once, adapter merged.

    A dense, frozen model: every forward pass is a plain one, and it computes exactly the
    (quantised) weights that training saw plus the adapter.
    """
    model = load_base(path, quantization=quantization, torch_dtype=torch_dtype, device=device,
                      attn_implementation=attn_implementation, trust_remote_code=trust_remote_code)
    if quantization:
        model = dequantize(model, torch_dtype)
    if adapter is not None:
        with quiet_transformers():
            model = merge_adapter(model, adapter, adapter_config)
    return freeze(model)


def freeze(model: Any) -> Any:
    """``model`` in eval mode with no parameter requiring gradients."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _invalid_field(field_name: str, problem: str) -> Exception:
    from ..exceptions import IncompatibleArtifactError

    return IncompatibleArtifactError(f"The field {field_name!r} of classifier.json {problem}.")


def check_lora_adapter(adapter: dict[str, np.ndarray] | None, adapter_config: Any) -> None:
    """The adapter's tensors are finite LoRA factors of the saved rank, in A/B pairs, on the saved targets."""
    if adapter is None:
        return
    if not isinstance(adapter_config, dict) or not isinstance(adapter_config.get("r"), int) or adapter_config["r"] < 1:
        raise _invalid_field("adapter_config", f"must give the LoRA rank 'r' of the adapter. Got {adapter_config!r} instead")
    rank = adapter_config["r"]
    names = set(adapter)
    for name, tensor in adapter.items():
        axis = 0 if "lora_A" in name else 1 if "lora_B" in name else None
        if axis is None or tensor.ndim != 2 or tensor.shape[axis] != rank or not np.all(np.isfinite(tensor)):
            raise _invalid_field("adapter_config.r", f"does not match the adapter: the tensor {name!r} of shape "
                                 f"{tuple(tensor.shape)} is not a finite LoRA factor of rank {rank}")
        partner = name.replace("lora_A", "lora_B") if axis == 0 else name.replace("lora_B", "lora_A")
        if partner not in names:
            raise _invalid_field("adapter.tensors", f"lists {name!r} without its partner {partner!r}")
    targets = adapter_config.get("target_modules")
    if isinstance(targets, list):
        stray = [name for name in names if not any(f".{target}.lora_" in name for target in targets)]
        if stray:
            raise _invalid_field("adapter_config.target_modules", f"({targets}) does not cover the adapter tensor {stray[0]!r}")
