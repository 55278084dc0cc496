"""The transformers + peft + bitsandbytes backend (the default)."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..base import Capabilities, EngineState, TrainRequest
from ..hf_checkpoints import ResolvedModel, resolve_model
from .runtime import apply_thread_limit, quiet_transformers

#: The LLMClassifier parameters this engine takes: at load, then in every training request.
LOAD_OPTIONS = ("quantization", "dtype", "device")
TRAIN_OPTIONS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "optimizer", "lr_scheduler", "ema_decay",
                 "gradient_checkpointing")


def cpu_supports_bf16() -> bool:
    """True if this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """``"auto"`` -> bfloat16 where the hardware computes it natively, else float32."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]


def resolve_attention(attn_implementation: str, device: str) -> tuple[str, str | None]:
    """The kernel to load with, and the one for short sequences (``None``: the same).

    ``"auto"`` -> ``"sdpa"``, with ``"eager"`` for short sequences on a CPU
    (see :func:`~.scoring.attention_for`).
    """
    if attn_implementation == "auto":
        return "sdpa", (None if device.startswith("cuda") else "eager")
    return attn_implementation, None


class TransformersBackend:
    """Run the classifier on a Hugging Face causal LM.

    Training loads the base in 4-bit NF4 (or 8-bit, or unquantised) through
    bitsandbytes and trains LoRA adapters with :mod:`peft` and
    :class:`transformers.Trainer`. For prediction the quantised base is
    dequantised once (so it computes exactly the weights that training saw) and
    the adapter is merged into it, which makes every forward pass a plain dense one.

    Parameters
    ----------
    compute : {"auto", "dense", "quantized"}, default="auto"
        How a quantised base computes. "quantized" runs bitsandbytes' 4-/8-bit kernels
        (the memory saving of QLoRA; fast on CUDA). "dense" quantises the weights and
        then dequantises them once, so the model computes exactly the NF4 weights with
        plain dense matmuls: the same function as QLoRA, without its memory saving,
        and on CPU about 3x faster per forward than bitsandbytes' CPU kernels (far more
        in training). "auto" is "quantized" on CUDA and "dense" elsewhere.
    attn_implementation : str, default="auto"
        Attention kernel passed to ``from_pretrained``. "auto" is "sdpa", except on a CPU for
        forward passes with at most 16 x 256 x 256 (query, key) pairs over the batch, which run
        the "eager" kernel: there PyTorch's fused CPU attention with a padding or tree mask was
        the slower one (a training step of short prompts took 1.2-1.25x as long), while for 8
        texts of 512 tokens the two were as fast and "eager" held 2.9 GB more for the backward pass.
    num_threads : int or None, default=None
        ``torch.set_num_threads`` for this process when the model is loaded. None follows
        ``OMP_NUM_THREADS`` when it is set (joblib's loky workers get ``cpu_count() // n_jobs``
        there, so parallel searches share the cores) and torch's default otherwise. The count
        in use is recorded as ``n_threads_``.
    trust_remote_code : bool, default=False
        Allow model code from the hub (off unless you ask for it).
    shared_prefix : bool, default=True
        Run the tokens that every prompt starts with (system line, instruction, class
        list) once: once per scoring call at prediction, once per batch in training,
        where every example's gradient flows through that one computation. The results
        are those of running each prompt whole, up to float rounding; ``False`` runs them
        whole (the reference the speed benchmark compares with).
    """

    name = "transformers"
    capabilities = Capabilities(fit=True, sample_weight=True, generate=True, state=True,
                                options=LOAD_OPTIONS + TRAIN_OPTIONS)

    def __init__(
        self,
        compute: str = "auto",
        attn_implementation: str = "auto",
        num_threads: int | None = None,
        trust_remote_code: bool = False,
        shared_prefix: bool = True,
    ):
        self.compute = compute
        self.attn_implementation = attn_implementation
        self.num_threads = num_threads
        self.trust_remote_code = trust_remote_code
        self.shared_prefix = shared_prefix

    # -- loading -------------------------------------------------------------------------
    def load(self, model: str, *, quantization: str | None = "4bit", dtype: str = "auto", device: str = "auto",
             **train_options: Any) -> None:
        """Load the base model and tokenizer named by ``model`` (no adapter); training options are ignored here."""
        from transformers import AutoTokenizer

        from .runtime import check_device
        from .tokenizer import HFTokenizer

        check_device(device)
        self.n_threads_ = apply_thread_limit(self.num_threads)
        self.resolved: ResolvedModel = resolve_model(model)
        self.quantization = quantization
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype, self.device)
        with quiet_transformers():
            hf_tokenizer = AutoTokenizer.from_pretrained(self.resolved.path, trust_remote_code=self.trust_remote_code)
        self.tokenizer = HFTokenizer(hf_tokenizer)
        self.eos_id, self.pad_id = self.tokenizer.end_id, self.tokenizer.pad_id
        self._inference_model: Any = None
        self._adapter: dict[str, np.ndarray] | None = None
        self._adapter_config: Any = None

    def _quantization_config(self) -> Any:
        import torch
        from transformers import BitsAndBytesConfig

        if self.quantization is None:
            return None
        if self.quantization == "4bit":
            return BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                # bitsandbytes' CPU path has no float16 kernels
                bnb_4bit_compute_dtype=torch.float32 if (self.device == "cpu" and self.torch_dtype == torch.float16) else self.torch_dtype,
            )
        if self.quantization == "8bit":
            return BitsAndBytesConfig(load_in_8bit=True)
        raise ValueError(f"Unknown quantization {self.quantization!r}")

    def _load_base(self) -> Any:
        """The base model as training sees it (quantised when asked)."""
        from transformers import AutoModelForCausalLM

        attention, short_attention = resolve_attention(self.attn_implementation, self.device)
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                self.resolved.path,
                dtype=self.torch_dtype,
                quantization_config=self._quantization_config(),
                device_map=self.device if self.quantization else None,
                attn_implementation=attention,
                trust_remote_code=self.trust_remote_code,
            )
        if not self.quantization:
            model.to(self.device)
        model.short_sequence_attention = short_attention  # read by scoring.attention_for
        return model

    def _dense_base(self) -> Any:
        """The base for inference: the quantised weights dequantised once to ``torch_dtype``."""
        model = self._load_base()
        if self.quantization:
            with quiet_transformers():
                model = model.dequantize(dtype=self.torch_dtype)
            model.hf_quantizer = None
            model.is_quantized = False
            model.config.quantization_config = None
            if hasattr(model.config, "_pre_quantization_dtype"):
                del model.config._pre_quantization_dtype
        return model

    @property
    def inference_model(self) -> Any:
        """The dense model with the adapter merged, built on first use."""
        if self._inference_model is None:
            self.n_threads_ = apply_thread_limit(self.num_threads)  # e.g. unpickled in a joblib worker
            model = self._dense_base()
            if self._adapter is not None:
                with quiet_transformers():
                    model = _merge_adapter(model, self._adapter, self._adapter_config)
            self._inference_model = _freeze(model)
        return self._inference_model

    def release(self) -> None:
        """Drop the loaded model (it is rebuilt on next use)."""
        self._inference_model = None
        gc.collect()

    # -- training ------------------------------------------------------------------------
    def fit(self, request: TrainRequest) -> dict[str, Any]:
        """Train LoRA adapters as ``request`` says (see :class:`~llm_classifier.engines.base.TrainRequest`)."""
        import torch

        from .training import TrainConfig, add_lora, build_dataset, lora_targets, train

        self.release()
        dense = self.dense_compute
        base = self._dense_base() if dense else self._load_base()
        config = TrainConfig.from_request(request, lora_targets(base, request.options.get("target_modules")))
        config = dataclasses.replace(config, shared_prefix=self.shared_prefix)
        model = add_lora(base, config)
        dataset = build_dataset(request.examples, config.objective)
        bf16 = self.torch_dtype == torch.bfloat16
        history = train(model, dataset, config, self.pad_id, use_cpu=self.device == "cpu", bf16=bf16,
                        validation=request.validation)
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model)
        self._adapter = {name: tensor.detach().float().cpu().numpy() for name, tensor in state.items()}
        self._adapter_config = _adapter_config(config)
        if dense:
            # The trained model is already the dense base + adapter: merging is exact.
            with quiet_transformers():
                self._inference_model = _freeze(model.merge_and_unload())
        del model, base
        gc.collect()
        return history

    @property
    def dense_compute(self) -> bool:
        """True when a quantised base is dequantised once and computed densely."""
        if self.compute not in ("auto", "dense", "quantized"):
            raise ValueError(f"TransformersBackend(compute=...) must be 'auto', 'dense' or 'quantized'; got {self.compute!r}.")
        if self.compute == "auto":
            return not self.device.startswith("cuda")
        return self.compute == "dense"

    def state(self) -> EngineState:
        """The base model's identity (absolute path, content hashes) and the adapter; never ``trust_remote_code``."""
        from ..hf_checkpoints import absolute_model_name

        return EngineState(engine=self.name, model=absolute_model_name(self.resolved.name),
                           fingerprint=self.resolved.fingerprint, adapter=self._adapter,
                           adapter_config=self._adapter_config,
                           options={"compute": self.compute, "attn_implementation": self.attn_implementation,
                                    "shared_prefix": self.shared_prefix},
                           files=[list(pair) for pair in self.resolved.files])

    def load_state(self, state: EngineState, *, model: str | None = None, **options: Any) -> None:
        """Load the base named by ``state`` (or the moved copy ``model``) after checking its content; install the adapter.

        The base is identified by content before anything, even its tokenizer, is read from it.
        """
        from ..hf_checkpoints import check_same_model

        name = model if model is not None else state.model
        check_same_model({"fingerprint": state.fingerprint, "files": state.files}, resolve_model(name),
                         legacy=state.legacy_fingerprint)
        check_lora_adapter(state.adapter, state.adapter_config)
        self.load(name, **options)
        self._adapter = state.adapter
        self._adapter_config = state.adapter_config
        self._inference_model = None

    # -- inference -----------------------------------------------------------------------
    def score(self, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *, batch_size: int,
              progress: Any = None) -> np.ndarray:
        from .scoring import score_pairs

        return score_pairs(self.inference_model, contexts, continuations, pad_id=self.pad_id, batch_size=batch_size,
                           progress=progress, shared_prefix=self.shared_prefix)

    def generate(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, batch_size: int, progress: Any = None) -> list[str]:
        import torch

        from .generation import greedy_generate, needs_plain_generate
        from .scoring import length_batches

        model = self.inference_model
        if self.shared_prefix and not needs_plain_generate(model):
            answers = greedy_generate(model, prompts, max_new_tokens=max_new_tokens, eos_id=self.eos_id,
                                      pad_id=self.pad_id, batch_size=batch_size, progress=progress)
            return [self.tokenizer.decode(tokens) for tokens in answers]
        out: list[str] = [""] * len(prompts)
        for batch in length_batches([len(p) for p in prompts], batch_size):
            width = max(len(prompts[i]) for i in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                prompt = prompts[index]
                ids[row, width - len(prompt) :] = torch.tensor(prompt)
                attention[row, width - len(prompt) :] = 1
            with torch.inference_mode():
                generated = model.generate(
                    input_ids=ids.to(model.device),
                    attention_mask=attention.to(model.device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=self.eos_id,
                    pad_token_id=self.pad_id,
                )
            for row, index in enumerate(batch):
                out[index] = self.tokenizer.decode(generated[row, width:].tolist())
            if progress is not None:
                progress.update(len(batch))
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_inference_model"] = None  # the weights are reloaded from the base on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled backend, refusing a base model whose files changed since it was pickled."""
        state.setdefault("shared_prefix", True)  # pickled before the option existed
        self.__dict__.update(state)
        resolved = state.get("resolved")
        if resolved is not None and getattr(resolved, "files", ()):
            from pathlib import Path

            from ...exceptions import IncompatibleArtifactError
            from ..hf_checkpoints import files_sha256, model_files

            found = dict(files_sha256(model_files(Path(resolved.path)))) if Path(resolved.path).is_dir() else {}
            changed = sorted(name for name in found.keys() | dict(resolved.files).keys()
                             if found.get(name) != dict(resolved.files).get(name))
            if changed:
                raise IncompatibleArtifactError(
                    f"The base model at {resolved.path!r} changed since this classifier was pickled "
                    f"(changed files: {', '.join(changed)}); restore the original model files."
                )


def _freeze(model: Any) -> Any:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _adapter_config(config: Any) -> dict[str, Any]:
    targets = config.target_modules
    return {
        "r": int(config.lora_r),
        "lora_alpha": float(config.lora_alpha),
        "target_modules": targets if isinstance(targets, str) else list(targets),
    }


def _merge_adapter(model: Any, adapter: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    lora = LoraConfig(r=config["r"], lora_alpha=config["lora_alpha"], target_modules=config["target_modules"], lora_dropout=0.0, bias="none")
    peft_model = get_peft_model(model, lora)  # the caller silences peft's warnings
    result = set_peft_model_state_dict(peft_model, {name: torch.from_numpy(np.asarray(value)) for name, value in adapter.items()})
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"The adapter does not fit this model: unexpected weights {unexpected[:3]}...")
    return peft_model.merge_and_unload()


def _invalid_field(field_name: str, problem: str) -> Exception:
    from ...exceptions import IncompatibleArtifactError

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
