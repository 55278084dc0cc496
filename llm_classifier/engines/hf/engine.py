"""The transformers + peft + bitsandbytes backend (the default)."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from ..base import Capabilities, EngineState, TrainRequest
from ..hf_checkpoints import ResolvedModel, reading, resolve_model
from ..hf_models import (check_lora_adapter, cpu_supports_bf16, dequantize, freeze, load_base, prediction_model,
                         quiet_transformers)
from .runtime import apply_thread_limit
from .training import OPTIMIZERS, SCHEDULERS

#: The LLMClassifier parameters this engine takes: at load, then in every training request.
LOAD_OPTIONS = ("quantization", "dtype", "device")
TRAIN_OPTIONS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "optimizer", "lr_scheduler", "ema_decay",
                 "gradient_checkpointing")

#: The attention kernels transformers implements itself (a hub kernel name such as "owner/repo" would be
#: downloaded and imported, so it is not among them).
ATTENTION_KERNELS = ("auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
#: The engine's constructor options and their constraints: checked when the engine is made, before anything
#: loads, and when an artifact's ``backend`` is rebuilt (:func:`llm_classifier.io.artifact._decode_param`).
OPTION_CONSTRAINTS: dict[str, list[Any]] = {
    "compute": [StrOptions({"auto", "dense", "quantized"})],
    "attn_implementation": [StrOptions(set(ATTENTION_KERNELS))],
    "num_threads": [Interval(Integral, 1, None, closed="left"), None],
    "trust_remote_code": ["boolean"],
    "shared_prefix": ["boolean"],
}
#: The options an artifact may restore: plain values that change no process setting and load no code
#: (``num_threads`` sets the whole process's torch threads and ``trust_remote_code`` runs the model's code:
#: only the caller sets them).
FILE_OPTIONS = ("compute", "attn_implementation", "shared_prefix")


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
                                options=LOAD_OPTIONS + TRAIN_OPTIONS,
                                option_constraints={"optimizer": [StrOptions(set(OPTIMIZERS))],
                                                    "lr_scheduler": [StrOptions(set(SCHEDULERS))]})
    #: read by the artifact loader: the constructor options a file may set (the others are the caller's)
    file_params = FILE_OPTIONS

    def __init__(
        self,
        compute: str = "auto",
        attn_implementation: str = "auto",
        num_threads: int | None = None,
        trust_remote_code: bool = False,
        shared_prefix: bool = True,
    ):
        validate_parameter_constraints(
            OPTION_CONSTRAINTS, {"compute": compute, "attn_implementation": attn_implementation,
                                 "num_threads": num_threads, "trust_remote_code": trust_remote_code,
                                 "shared_prefix": shared_prefix}, caller_name=type(self).__name__)
        if isinstance(num_threads, (bool, np.bool_)):  # an Integral to the constraint, but not a count
            from sklearn.utils._param_validation import InvalidParameterError

            raise InvalidParameterError(f"The 'num_threads' parameter of {type(self).__name__} must be an int in the "
                                        f"range [1, inf) or None. Got {num_threads!r} instead.")
        self.compute = compute
        self.attn_implementation = attn_implementation
        self.num_threads = num_threads
        self.trust_remote_code = trust_remote_code
        self.shared_prefix = shared_prefix

    # -- loading -------------------------------------------------------------------------
    def load(self, model: str, *, quantization: str | None = "4bit", dtype: str = "auto", device: str = "auto",
             **train_options: Any) -> None:
        """Load the base model and tokenizer named by ``model`` (no adapter).

        ``train_options`` (the training options of :data:`TRAIN_OPTIONS`, which the estimator
        passes with every call) apply to :meth:`fit`, not here; any other name is an error.
        """
        from .runtime import check_device

        unknown = sorted(set(train_options) - set(TRAIN_OPTIONS))
        if unknown:
            raise TypeError(f"TransformersBackend.load got unknown options {unknown}; it takes {list(LOAD_OPTIONS)} "
                            f"and the training options {list(TRAIN_OPTIONS)}.")

        check_device(device)
        self._use(resolve_model(model), quantization=quantization, dtype=dtype, device=device)

    def _use(self, resolved: ResolvedModel, *, quantization: str | None = "4bit", dtype: str = "auto",
             device: str = "auto", **train_options: Any) -> None:
        """Take ``resolved`` (hashed) as the base: read its tokenizer, checked as read; the weights load on first use."""
        from transformers import AutoTokenizer

        from ..hf_tokenizer import HFTokenizer

        self.n_threads_ = apply_thread_limit(self.num_threads)
        self.resolved: ResolvedModel = resolved
        self.quantization = quantization
        self.device = resolve_device(device)
        self.torch_dtype = resolve_dtype(dtype, self.device)
        with quiet_transformers(), reading(self.resolved):
            hf_tokenizer = AutoTokenizer.from_pretrained(self.resolved.path, trust_remote_code=self.trust_remote_code)
        self.tokenizer = HFTokenizer(hf_tokenizer)
        self.eos_id, self.pad_id = self.tokenizer.end_id, self.tokenizer.pad_id
        self._inference_model: Any = None
        self._adapter: dict[str, np.ndarray] | None = None
        self._adapter_config: Any = None

    def _load_base(self) -> Any:
        """The base model as training sees it (quantised when asked)."""
        attention, short_attention = resolve_attention(self.attn_implementation, self.device)
        with reading(self.resolved):  # the bytes read are the ones fingerprinted
            model = load_base(self.resolved.path, quantization=self.quantization, torch_dtype=self.torch_dtype,
                              device=self.device, attn_implementation=attention,
                              trust_remote_code=self.trust_remote_code)
        model.short_sequence_attention = short_attention  # read by scoring.attention_for
        return model

    def _dense_base(self) -> Any:
        """The base for inference: the quantised weights dequantised once to ``torch_dtype``."""
        model = self._load_base()
        return dequantize(model, self.torch_dtype) if self.quantization else model

    @property
    def inference_model(self) -> Any:
        """The dense model with the adapter merged, built on first use."""
        if self._inference_model is None:
            import torch

            self.n_threads_ = apply_thread_limit(self.num_threads)  # e.g. unpickled in a joblib worker
            attention, short_attention = resolve_attention(self.attn_implementation, self.device)
            # Building the model initialises weights before loading them (and LoRA factors before the saved
            # ones replace them): on a forked generator, so that the caller's torch random state is kept.
            with torch.random.fork_rng(devices=_cuda_devices(self.device)), reading(self.resolved):
                model = prediction_model(self.resolved.path, quantization=self.quantization,
                                         torch_dtype=self.torch_dtype, device=self.device, adapter=self._adapter,
                                         adapter_config=self._adapter_config, attn_implementation=attention,
                                         trust_remote_code=self.trust_remote_code)
            model.short_sequence_attention = short_attention  # read by scoring.attention_for
            self._inference_model = model
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
                self._inference_model = freeze(model.merge_and_unload())
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
                           files=[list(pair) for pair in self.resolved.files])

    def load_state(self, state: EngineState, *, model: str | None = None, **options: Any) -> None:
        """Load the base named by ``state`` (or the moved copy ``model``) after checking its content; install the adapter.

        The base is identified by content before anything, even its tokenizer, is read from it.
        """
        from ..hf_checkpoints import check_same_model

        from .runtime import check_device

        name = model if model is not None else state.model
        check_device(options.get("device", "auto"))
        found = resolve_model(name)
        check_same_model({"fingerprint": state.fingerprint, "files": state.files}, found,
                         legacy=state.legacy_fingerprint)
        check_lora_adapter(state.adapter, state.adapter_config)
        self._use(found, **options)  # the files are checked again as they are read
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

            root = Path(resolved.path)
            found = dict(files_sha256(model_files(root), root)) if root.is_dir() else {}
            changed = sorted(name for name in found.keys() | dict(resolved.files).keys()
                             if found.get(name) != dict(resolved.files).get(name))
            if changed:
                raise IncompatibleArtifactError(
                    f"The base model at {resolved.path!r} changed since this classifier was pickled "
                    f"(changed files: {', '.join(changed)}); restore the original model files."
                )


def _cuda_devices(device: str) -> list[int]:
    """The CUDA devices whose generators a forked random state must cover."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return []
    return [torch.device(device).index or 0]


def _adapter_config(config: Any) -> dict[str, Any]:
    targets = config.target_modules
    return {
        "r": int(config.lora_r),
        "lora_alpha": float(config.lora_alpha),
        "target_modules": targets if isinstance(targets, str) else list(targets),
    }
