"""The QLoRA recipe: LoRA adapters on a (4-bit) base, trained on prompt + answer.

Training runs through :class:`transformers.Trainer` (so optimizers, schedulers,
gradient accumulation, progress bars and ``accelerate launch`` multi-process runs
come from the engine users already know). Three things differ from a plain run:

* each example is a token tree (:mod:`.decision_trees`): its context once, then
  every decision (a prefix and its candidates) as a branch after it, in one
  tree-masked pass; the loss is on the candidates' tokens only, and the output
  layer is applied only at the positions that predict one;
* batches are grouped by length, so little compute is spent on padding;
* the tokens that all of a batch's contexts start with (system line, instruction,
  class list) run once per batch, and every example attends to their keys and
  values (:class:`~.scoring.SharedPrefix`): the gradient of every example flows
  into that one computation, so the update is the one of running each sequence whole.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


from ...exceptions import TrainingDivergedError
from ..base import Validation

OPTIMIZERS = {
    "adamw": "adamw_torch",
    "adamw_torch": "adamw_torch",
    "adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "adafactor": "adafactor",
    "sgd": "sgd",
}
OBJECTIVES = ("answer", "class", "answer+class")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run as this engine runs it: the request's schedule and the engine's own options."""

    lora_r: int = 16
    lora_alpha: float = 16
    lora_dropout: float = 0.0
    target_modules: Sequence[str] | str = "all-linear"
    learning_rate: float | str = "auto"
    max_steps: int | None = None
    num_train_epochs: float = 2.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 5
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    lr_scheduler: str = "linear"
    objective: str = "answer"
    #: recompute each decoder layer's activations in the backward pass instead of storing them
    gradient_checkpointing: bool = False
    #: decay of an exponential moving average of the adapter weights, kept instead of the last ones (``None``: off)
    ema_decay: float | None = None
    #: evaluations of the validation slice over the run (when one is given)
    n_evaluations: int = 10
    #: evaluations without improvement before stopping (``None``: never stop early)
    patience: int | None = None
    eval_batch_size: int = 16
    seed: int = 0
    verbose: bool = False
    #: run the tokens that all prompts of a batch start with once per batch (not with gradient checkpointing)
    shared_prefix: bool = True

    @classmethod
    def from_request(cls, request: Any, target_modules: Sequence[str] | str) -> TrainConfig:
        """The config of ``request`` (a :class:`~llm_classifier.engines.base.TrainRequest`) on this engine."""
        options = {name: value for name, value in request.options.items() if name in cls.__dataclass_fields__}
        options["target_modules"] = target_modules
        schedule = {name: getattr(request, name) for name in (
            "learning_rate", "max_steps", "num_train_epochs", "batch_size", "gradient_accumulation_steps",
            "warmup_steps", "weight_decay", "objective", "patience", "eval_batch_size", "seed", "verbose")}
        return cls(**options, **schedule)

    def n_steps(self, n_examples: int, world_size: int = 1) -> int:
        """Optimizer steps this config makes on ``n_examples`` examples."""
        if self.max_steps is not None:
            return int(self.max_steps)
        per_step = self.batch_size * self.gradient_accumulation_steps * world_size
        return max(1, math.ceil(self.num_train_epochs * n_examples / per_step))


#: ``learning_rate="auto"``: the seed recipe's 2e-4 at a hidden size of 4096 (Llama-3.1-8B),
#: scaled by 4096 / hidden_size (Adam's best step size shrinks about as 1 / width), kept in [2e-4, 1e-3]
AUTO_LR_REFERENCE = (2e-4, 4096)
AUTO_LR_RANGE = (2e-4, 1e-3)


def resolve_learning_rate(learning_rate: float | str, model: Any) -> float:
    """The learning rate to use: ``learning_rate`` itself, or the width rule for ``"auto"``.

    ``"auto"`` gives 2e-4 for a 4096-wide model (the seed recipe), about 5e-4 at width
    1536 and 1e-3 for models of width 820 or less (SmolLM2-135M: 576, gemma-3-270m: 640).
    """
    if learning_rate != "auto":
        return float(learning_rate)
    config = getattr(model, "config", None)
    hidden = getattr(config, "hidden_size", None) or getattr(getattr(config, "text_config", None), "hidden_size", None)
    if not hidden:
        return AUTO_LR_REFERENCE[0]
    rate = AUTO_LR_REFERENCE[0] * AUTO_LR_REFERENCE[1] / hidden
    return float(min(max(rate, AUTO_LR_RANGE[0]), AUTO_LR_RANGE[1]))


def lora_targets(model: Any, target_modules: Sequence[str] | str | None) -> list[str] | str:
    """The projection names to adapt: the seven attention/MLP projections where present."""
    if target_modules is not None:
        return target_modules if isinstance(target_modules, str) else list(target_modules)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    present = [name for name in DEFAULT_TARGET_MODULES if name in names]
    return present or "all-linear"


@contextlib.contextmanager
def kept_torch_rng() -> Iterator[None]:
    """Restore torch's global generators (CPU, and CUDA when initialised) when the block ends.

    Training seeds them (adapter initialisation, data order, dropout); the caller's
    stream of random numbers after ``fit`` is the one it had before.
    """
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        yield


def add_lora(model: Any, config: TrainConfig) -> Any:
    """Wrap ``model`` with fresh LoRA adapters (seeded by ``config.seed``; torch's global generator is kept)."""
    with kept_torch_rng():
        return _add_lora(model, config)


def _add_lora(model: Any, config: TrainConfig) -> Any:
    import torch

    from ..hf_models import quiet_transformers

    with quiet_transformers():  # peft's first import may import bitsandbytes, which logs about optional kernels
        from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_targets(model, config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with quiet_transformers():
        return get_peft_model(model, lora)


@contextlib.contextmanager
def checkpointed(model: Any, enabled: bool) -> Iterator[None]:
    """Gradient checkpointing of ``model``'s decoder layers while the block runs (if ``enabled``).

    Activations inside each layer are recomputed in the backward pass instead of kept from
    the forward one: training memory no longer grows with the number of layers, for about
    a third more compute. The non-reentrant variant needs no gradient on the (frozen) inputs.
    """
    if not enabled:
        yield
        return
    kwargs = {"use_reentrant": False}
    base = model.get_base_model()
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        disable = model.activation_checkpointing_disable
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        disable = model.gradient_checkpointing_disable
    # The backward pass recomputes each layer outside scoring.attention_for: one kernel throughout.
    short = getattr(base, "short_sequence_attention", None)
    base.short_sequence_attention = None
    try:
        yield
    finally:
        disable()
        base.short_sequence_attention = short


def _loss_module(model: Any, objective: str) -> Any:
    """Wrap the peft model so the Trainer's (and DDP's) forward call computes our loss."""
    import torch

    from .decision_trees import decision_loss

    class ClassifierLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.config = model.config
            self._body_params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n)

        def forward(self, **inputs: Any) -> Any:
            return decision_loss(self.model, inputs, objective)

        def floating_point_ops(self, inputs: dict[str, Any]) -> int:
            # Frozen base: forward (2 FLOPs per weight per token) + backward to the activations (2).
            tokens = int(inputs["input_ids"].numel()) + (int(inputs["prefix_ids"].numel()) if "prefix_ids" in inputs else 0)
            return int(4 * self._body_params * tokens)

    return ClassifierLoss()


def build_dataset(examples: Sequence[Any], objective: str = "answer") -> Any:
    """A ``datasets.Dataset`` of the request's examples, each as a token tree (:func:`~.decision_trees.flatten_example`).

    ``length`` (the tree's tokens) serves length grouping.
    """
    from datasets import Dataset

    from .decision_trees import flatten_example

    rows = [flatten_example(example.context, example.decisions, objective) for example in examples]
    return Dataset.from_dict({name: [row[name] for row in rows] for name in rows[0]} if rows else {"length": []})


def check_finite_loss(loss: Any, step: int, learning_rate: float) -> None:
    """Raise :class:`TrainingDivergedError` when ``loss`` (a scalar tensor) is not finite at optimizer ``step``."""
    import torch

    if not bool(torch.isfinite(loss.detach()).all()):
        raise TrainingDivergedError(
            f"Training diverged at step {step} (loss {float(loss.detach().float().mean()):g}): the adapter weights are "
            f"no longer usable. Lower learning_rate (it was {learning_rate:g}), or use a smaller lora_alpha or "
            "more warmup_steps. The estimator was left as it was before fit."
        )


def train(model: Any, dataset: Any, config: TrainConfig, pad_id: int, use_cpu: bool, bf16: bool,
          validation: Validation | None = None) -> dict[str, Any]:
    """Train the adapters of ``model`` in place and return the run's history.

    Torch's global generators are left as they were (see :func:`kept_torch_rng`); a loss
    that turns NaN or infinite stops the run with :class:`TrainingDivergedError`.

    ``dataset`` comes from :func:`build_dataset`. With ``validation`` (the core's
    :data:`~llm_classifier.engines.base.Validation`) the held-out slice is scored
    ``config.n_evaluations`` times during the run, training stops after
    ``config.patience`` evaluations without a lower loss, and the best
    adapter weights are restored at the end (see :mod:`.early_stopping`).

    Returns
    -------
    dict
        ``steps`` (per-step loss, learning rate, ...) and the trainer's summary
        (``train_runtime``, ``train_samples_per_second``, ``train_steps_per_second``,
        ``total_flos``, ``train_loss``), plus ``n_steps`` and ``n_examples``;
        with a validation slice also ``validation`` (the loss per evaluation),
        ``best_step``, ``stopped_early`` and ``validation_scores`` (the scores
        ``validation`` returned for the restored adapter).
    """
    with kept_torch_rng():
        return _train(model, dataset, config, pad_id, use_cpu, bf16, validation)


def _train(model: Any, dataset: Any, config: TrainConfig, pad_id: int, use_cpu: bool, bf16: bool,
           validation: Validation | None) -> dict[str, Any]:
    from transformers import Trainer, TrainingArguments

    from ..hf_models import quiet_transformers
    from .decision_trees import DecisionCollator
    from .runtime import world_size

    class ClassifierTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = model(**inputs)
            check_finite_loss(loss, self.state.global_step + 1, self.args.learning_rate)
            return (loss, None) if return_outputs else loss

    # Gradient checkpointing recomputes each layer without its cache, and LoRA dropout draws a mask per
    # example: with either, every prompt runs whole.
    shared_prefix = config.shared_prefix and not config.gradient_checkpointing and not config.lora_dropout
    collator = DecisionCollator(pad_id, shared_prefix)
    loss_module = _loss_module(model, config.objective)

    max_steps = config.n_steps(len(dataset), world_size())
    learning_rate = resolve_learning_rate(config.learning_rate, model)
    with tempfile.TemporaryDirectory(prefix="llm_classifier_train_") as scratch, quiet_transformers():
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=config.batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            learning_rate=learning_rate,
            max_steps=max_steps,
            warmup_steps=config.warmup_steps,
            weight_decay=config.weight_decay,
            optim=OPTIMIZERS[config.optimizer],
            lr_scheduler_type=config.lr_scheduler,
            seed=config.seed,
            data_seed=config.seed,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=not config.verbose,
            use_cpu=use_cpu,
            bf16=bf16,
            train_sampling_strategy="group_by_length",
            length_column_name="length",
            remove_unused_columns=False,
            dataloader_num_workers=0,
        )
        trainer = ClassifierTrainer(model=loss_module, args=args, train_dataset=dataset, data_collator=collator)
        if not config.verbose:
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        ema = None
        if config.ema_decay is not None:
            from .averaging import AdapterEMA, ema_callback

            ema = AdapterEMA(model, config.ema_decay)
            trainer.add_callback(ema_callback(ema))  # before the monitor's: an evaluation sees the step's update
        monitor = None
        if validation is not None:
            from .early_stopping import BestAdapterMonitor, trainer_callback

            monitor = BestAdapterMonitor(model, validation, pad_id,
                                         eval_steps=math.ceil(max_steps / max(1, config.n_evaluations)),
                                         patience=config.patience, averaged=ema)
            trainer.add_callback(trainer_callback(monitor))
        with checkpointed(model, config.gradient_checkpointing):
            output = trainer.train()
        steps = [entry for entry in trainer.state.log_history if "loss" in entry]
        if monitor is not None:
            monitor.restore()
        elif ema is not None:
            ema.copy_to_model()
    history = dict(output.metrics)
    if monitor is not None:
        history.update(validation=monitor.history, best_step=monitor.best_step,
                       stopped_early=int(trainer.state.global_step) < max_steps, validation_scores=monitor.best_scores)
    history.update(
        steps=steps,
        n_steps=int(trainer.state.global_step),
        n_examples=len(dataset),
        learning_rate=learning_rate,
        ema_decay=config.ema_decay,
        n_tokens=int(sum(dataset["length"])),
    )
    return history
