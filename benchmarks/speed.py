"""Speed benchmark: our label scoring and training against the naive ways, side by side.

    python3 -m benchmarks.speed --out results/speed            # default model, all CPU sections: over an hour on 2 cores
    python3 -m benchmarks.speed --sections peak,scoring,training   # about 10 minutes
    python3 -m benchmarks.speed --random-weights smollm2-135m  # no model files needed (e.g. on a GPU)
    python3 -m benchmarks.speed --random-weights llama-3.1-8b --device cuda --sections peak,training  # GPU
    bash benchmarks/gpu_speed.sh                              # the same, as the one script to run on a lent GPU

Every ratio is measured in one run, on the same model, data and prompt, and printed
with the raw figures behind it. Sections:

* ``peak``     - the machine's own bf16 (or fp32) matrix-multiply rate;
* ``scoring``  - label-trie scoring at 52 vs 2 classes (same prompt text), the naive
  one-sequence-per-class scorer, our batched greedy generate-and-parse, and the seed's
  one-at-a-time ``generate``; achieved FLOP/s as a share of the peak;
* ``training`` - ``LLMClassifier.fit`` vs a plain TRL ``SFTTrainer`` + peft QLoRA run written
  the seed's way (4-bit bitsandbytes compute, no length grouping, full-vocabulary logits), in
  separate processes: tokens/s, final loss, peak memory, share of the peak;
* ``memory``   - ``LLMClassifier.fit`` on long texts (BBC news, cut to ``max_length=512``)
  without and with ``gradient_checkpointing``, in separate processes: peak memory and tokens/s;
* ``prefix``   - the shared prompt prefix (``TransformersBackend(shared_prefix=...)``) on and off,
  on the three short-text tasks (sentiment, languages, German authors) with the library's
  defaults: training tokens/s, the fitted adapters' difference and macro-F1, and prediction
  time and probabilities of one fitted model with the prefix run once or with every prompt;
* ``predict-memory`` - peak RSS of predicting 20,000 texts with the prefix shared and not (separate
  processes): the prefix's cache must not grow with the input;
* ``engines``  - vLLM against transformers (opt in; needs ``.venv-vllm``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ARCHITECTURES = {
    # SmolLM2-135M's shape, and a Llama-3.1-8B-sized config, both with SmolLM2's tokenizer.
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128),
}
SCORING_TEMPLATE = "Reuters newswire story:\n{text}\n\nTopic:"  # does not list the labels


def measure_peak(dtype: str = "bfloat16", size: int = 2048, seconds: float = 3.0, device: str = "cpu") -> float:
    """Best matmul rate (FLOP/s) of ``size``-square matrices in ``dtype`` on this machine (or GPU ``device``)."""
    import torch

    torch_dtype = getattr(torch, dtype)
    if device.startswith("cuda"):
        size = max(size, 8192)  # a GPU needs large matrices to reach its peak
    a = torch.randn(size, size, device=device).to(torch_dtype)
    b = torch.randn(size, size, device=device).to(torch_dtype)
    torch.matmul(a, b)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.matmul(a, b)
        sync()
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def random_weights_model(name: str, out: Path, device: str = "cpu") -> str:
    """Write a randomly initialised checkpoint of a named architecture with SmolLM2's tokenizer (built on ``device``)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llm_classifier.engines.hf_checkpoints import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct").path)
    config = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, max_position_embeddings=8192,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **ARCHITECTURES[name])
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def forward_flops(model: Any, n_tokens: int, n_logit_rows: int, attention_pairs: int) -> float:
    """FLOPs of forward passes: 2 per weight per token, the output layer where computed, attention."""
    config = model.config
    embedding = config.vocab_size * config.hidden_size
    body = sum(p.numel() for p in model.parameters()) - embedding * (1 if config.tie_word_embeddings else 2)
    head_dim = getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
    attention = 4 * config.num_hidden_layers * config.num_attention_heads * head_dim * attention_pairs
    return 2.0 * body * n_tokens + 2.0 * embedding * n_logit_rows + attention


def encoded_prompts(clf: Any, texts: list[str]) -> list[list[int]]:
    """The token ids the fitted ``clf`` scores for ``texts`` (one prompt per text)."""
    from llm_classifier.pipeline.predict import text_windows

    from llm_classifier.pipeline.plan import plan_of

    return text_windows(clf.state_, plan_of(clf), truncate=True).encode(list(texts)).ids


def _timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def scoring_section(model_name: str, n_texts: int, n_naive: int, n_seed: int, device: str, peak: float) -> dict[str, Any]:
    """Label scoring at 52 and 2 classes vs the naive scorer and generation."""
    from benchmarks.tasks import load_task
    from llm_classifier import FormatTemplate, LLMClassifier
    from llm_classifier.engines.hf.scoring import common_prefix_length, score_labels_naive
    from llm_classifier.engines.trie import LabelTrie

    train_x, train_y, test_x, _, _ = load_task("news-r52", n_train=520, n_test=max(n_texts, 60))
    texts = list(test_x[:n_texts])
    common = dict(model=model_name, prompt=FormatTemplate(SCORING_TEMPLATE), max_steps=0, calibration=None, device=device, eval_batch_size=16)
    clf52 = LLMClassifier(**common).fit(train_x, train_y)
    two = [label in ("earn", "acq") for label in train_y]
    clf2 = LLMClassifier(**common).fit([x for x, keep in zip(train_x, two) if keep], [y for y, keep in zip(train_y, two) if keep])
    backend = clf52.backend_
    model = backend.inference_model
    clf2.backend_._inference_model = model  # one model in memory for both
    clf52.predict_proba(texts[:4])  # warm-up
    prompts = encoded_prompts(clf52, texts)
    _, t52 = _timed(clf52.predict_proba, texts)
    _, t2 = _timed(clf2.predict_proba, texts)
    _, t_naive = _timed(score_labels_naive, model, prompts[:n_naive], clf52.choice_ids_, pad_id=backend.pad_id, batch_size=16)
    clf52.set_params(inference="generate")
    predictions, t_generate = _timed(clf52.predict, texts)
    unparseable = sum(clf52.label_parser_.parse(a, clf52.answers_) is None for a in clf52.generate(texts))
    t_seed = _seed_generate(model, backend, prompts[:n_seed])
    trie = LabelTrie.build(clf52.choice_ids_)
    n_nodes, inner = trie.n_nodes, len(trie.inner_nodes())  # only the inner nodes are run (leaves predict nothing)
    shared = common_prefix_length(prompts)  # run once per call (the shared prefix)
    tokens = shared + sum(len(p) - shared + inner for p in prompts)
    pairs = sum((len(p) - shared + inner) * (len(p) + inner) for p in prompts)  # queries x keys, mask applied in full
    useful = forward_flops(model, tokens, len(prompts) * (1 + inner), pairs)
    per = lambda seconds, n: seconds / n * 1000.0  # ms per text
    result = {
        "n_texts": len(texts),
        "mean_prompt_tokens": float(np.mean([len(p) for p in prompts])),
        "shared_prefix_tokens": shared,
        "trie_nodes_52": n_nodes,
        "ms_per_text_52_classes": per(t52, len(texts)),
        "ms_per_text_2_classes": per(t2, len(texts)),
        "ratio_52_over_2": t52 / t2,
        "ms_per_text_naive_52": per(t_naive, n_naive),
        "speedup_vs_naive_52": per(t_naive, n_naive) / per(t52, len(texts)),
        "ms_per_text_generate_batched": per(t_generate, len(texts)),
        "unparseable_generated": int(unparseable),
        "ms_per_text_seed_generate": per(t_seed, n_seed),
        "speedup_vs_generate": per(t_generate, len(texts)) / per(t52, len(texts)),
        "speedup_vs_seed_generate": per(t_seed, n_seed) / per(t52, len(texts)),
        "scoring_flops_per_s": useful / t52,
        "share_of_peak": useful / t52 / peak,
    }
    return result


def _seed_generate(model: Any, backend: Any, prompts: list[list[int]]) -> float:
    """The seed's way: one example at a time, ``generate`` with a generous ``max_new_tokens``."""
    import torch

    start = time.perf_counter()
    for prompt in prompts:
        ids = torch.tensor([prompt], device=model.device)
        with torch.inference_mode():
            output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=64, do_sample=False, pad_token_id=backend.pad_id)
        backend.tokenizer.decode(output[0, len(prompt):].tolist())
    return time.perf_counter() - start


TRAIN_CHILD = r'''
import json, resource, sys, time
sys.path.insert(0, {root!r})
kind, model_name, steps, device, task, extra = {kind!r}, {model_name!r}, {steps}, {device!r}, {task!r}, {extra!r}
from benchmarks.tasks import load_task
train_x, train_y, _, _, _ = load_task(task, n_train=400, n_test=20)
train_x, train_y = train_x[:{n_examples}], train_y[:{n_examples}]
if kind == "ours":
    from llm_classifier import LLMClassifier
    from llm_classifier.engines.hf.engine import TransformersBackend
    backend = TransformersBackend(shared_prefix=extra.pop("shared_prefix", True), attn_implementation=extra.pop("attn_implementation", "auto"))
    clf = LLMClassifier(model=model_name, max_steps=steps, batch_size=8, learning_rate=2e-4, warmup_steps=2, random_state=0, device=device, backend=backend, **extra)
    clf.fit(train_x, train_y)
    h = clf.history_
    losses = [s["loss"] for s in h["steps"]]
    tokens = h["n_tokens"] / h["n_examples"] * 8 * steps
    out = dict(runtime=h["train_runtime"], losses=losses, tokens=tokens, params=None)
else:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer
    from llm_classifier.engines.hf_checkpoints import resolve_model
    from llm_classifier.plugins.prompts import ChatTemplate
    path = resolve_model(model_name).path if not model_name.startswith("/") else model_name
    tokenizer = AutoTokenizer.from_pretrained(path)
    labels = sorted(set(train_y))
    template = ChatTemplate()
    from llm_classifier.engines.hf_tokenizer import HFTokenizer
    rows = dict(prompt=[template.render(x, labels, HFTokenizer(tokenizer)) for x in train_x], completion=[y + tokenizer.eos_token for y in train_y])
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb, dtype=torch.bfloat16, device_map=device)
    lora = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"], task_type="CAUSAL_LM")
    args = SFTConfig(output_dir="/tmp/plain_sft", per_device_train_batch_size=8, max_steps=steps, learning_rate=2e-4, warmup_steps=2,
                     lr_scheduler_type="linear", logging_steps=1, save_strategy="no", report_to=[], use_cpu=device == "cpu",
                     bf16=True, seed=0, completion_only_loss=True, dataset_text_field=None, max_length=512, disable_tqdm=True)
    tokenizer.pad_token = "<|endoftext|>"
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), processing_class=tokenizer, peft_config=lora)
    result = trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    n_tok = [len(tokenizer(p + c, add_special_tokens=False)["input_ids"]) for p, c in zip(rows["prompt"], rows["completion"])]
    tokens = sum(n_tok) / len(n_tok) * 8 * steps
    out = dict(runtime=result.metrics["train_runtime"], losses=losses, tokens=tokens)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import torch
if torch.cuda.is_available():
    out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
print("RESULT" + json.dumps(out))
'''


def _train_child(kind: str, model_name: str, steps: int, n_examples: int, device: str, task: str = "sentiment",
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    code = TRAIN_CHILD.format(root=str(Path(__file__).resolve().parent.parent), kind=kind, model_name=model_name, steps=steps,
                              n_examples=n_examples, device=device, task=task, extra=extra or {})
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} training run failed:\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT"):])


def training_section(model_name: str, steps: int, device: str, peak: float, skip_plain: bool) -> dict[str, Any]:
    """LLMClassifier.fit vs a plain TRL SFTTrainer QLoRA run, same data and hyperparameters."""
    from transformers import AutoConfig

    from llm_classifier.engines.hf_checkpoints import resolve_model

    n_examples = steps * 8
    ours = _train_child("ours", model_name, steps, n_examples, device)
    result: dict[str, Any] = {"steps": steps, "batch_size": 8, "ours": ours}
    path = resolve_model(model_name).path if not model_name.startswith("/") else model_name
    config = AutoConfig.from_pretrained(path)
    head_dim = getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
    body = config.num_hidden_layers * (
        config.hidden_size * (config.num_attention_heads + 2 * config.num_key_value_heads) * head_dim
        + config.num_attention_heads * head_dim * config.hidden_size
        + 3 * config.hidden_size * config.intermediate_size
    )
    # Frozen base: forward (2 FLOPs/weight/token) + backward to the activations (2 more); the
    # LoRA weights' own gradients and the output layer at the answer positions are small.
    flops_per_token = 4.0 * body
    ours["tokens_per_s"] = ours["tokens"] / ours["runtime"]
    ours["share_of_peak"] = ours["tokens_per_s"] * flops_per_token / peak
    ours["final_loss"] = float(np.mean(ours["losses"][-3:]))
    whole = _train_child("ours", model_name, steps, n_examples, device, extra={"shared_prefix": False})
    whole["tokens_per_s"] = whole["tokens"] / whole["runtime"]
    whole["share_of_peak"] = whole["tokens_per_s"] * flops_per_token / peak
    whole["final_loss"] = float(np.mean(whole["losses"][-3:]))
    result["ours_prompts_whole"] = whole
    result["shared_prefix_speedup"] = ours["tokens_per_s"] / whole["tokens_per_s"]
    if not skip_plain:
        plain = _train_child("plain", model_name, steps, n_examples, device)
        plain["tokens_per_s"] = plain["tokens"] / plain["runtime"]
        plain["share_of_peak"] = plain["tokens_per_s"] * flops_per_token / peak
        plain["final_loss"] = float(np.mean(plain["losses"][-3:]))
        result["plain_trl_qlora"] = plain
        result["speedup_tokens_per_s"] = ours["tokens_per_s"] / plain["tokens_per_s"]
    return result


def memory_section(model_name: str, steps: int, device: str) -> dict[str, Any]:
    """LLMClassifier.fit on long texts without and with gradient checkpointing (separate processes)."""
    runs = {}
    for checkpointing in (False, True):
        run = _train_child("ours", model_name, steps, steps * 8, device, task="news-bbc",
                           extra={"gradient_checkpointing": checkpointing, "max_length": 512})
        run["tokens_per_s"] = run["tokens"] / run["runtime"]
        runs["checkpointed" if checkpointing else "plain"] = run
    plain, checkpointed = runs["plain"], runs["checkpointed"]
    result: dict[str, Any] = {"steps": steps, "batch_size": 8, "task": "news-bbc", "max_length": 512, **runs}
    result["peak_rss_ratio"] = checkpointed["peak_rss_mb"] / plain["peak_rss_mb"]
    result["tokens_per_s_ratio"] = checkpointed["tokens_per_s"] / plain["tokens_per_s"]
    if "peak_gpu_mb" in plain:
        result["peak_gpu_ratio"] = checkpointed["peak_gpu_mb"] / plain["peak_gpu_mb"]
    return result


PREDICT_CHILD = r'''
import json, resource, sys, time
sys.path.insert(0, {root!r})
from benchmarks.tasks import load_task
from llm_classifier import LLMClassifier
from llm_classifier.engines.hf.engine import TransformersBackend
train_x, train_y, test_x, _, _ = load_task("sentiment", n_train=100, n_test=200)
clf = LLMClassifier(max_steps=0, random_state=0, device={device!r}, backend=TransformersBackend(shared_prefix={shared!r}))
clf.fit(train_x, train_y)
clf.predict_proba(test_x[:8])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
texts = [test_x[i % len(test_x)] for i in range({n_texts})]
start = time.perf_counter()
proba = clf.predict_proba(texts)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT" + json.dumps(dict(n_texts=len(texts), seconds=seconds, peak_rss_mb_before=before, peak_rss_mb=after)))
'''


def predict_memory_section(n_texts: int, device: str) -> dict[str, Any]:
    """Peak RSS of predicting ``n_texts`` sentiment texts, the shared prefix on and off (separate processes)."""
    result: dict[str, Any] = {"n_texts": n_texts}
    for shared in (False, True):
        code = PREDICT_CHILD.format(root=str(Path(__file__).resolve().parent.parent), device=device, shared=shared,
                                    n_texts=n_texts)
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT")]
        if completed.returncode != 0 or not lines:
            raise RuntimeError(f"prediction run failed:\n{completed.stderr[-3000:]}")
        result["shared" if shared else "whole"] = json.loads(lines[-1][len("RESULT"):])
    whole, shared_run = result["whole"], result["shared"]
    result["peak_rss_ratio"] = shared_run["peak_rss_mb"] / whole["peak_rss_mb"]
    print(f"predicting {n_texts} texts: every prompt whole {whole['seconds']:.0f} s, peak RSS {whole['peak_rss_mb']:.0f} MB "
          f"({whole['peak_rss_mb_before']:.0f} before); shared prefix {shared_run['seconds']:.0f} s, peak RSS "
          f"{shared_run['peak_rss_mb']:.0f} MB ({shared_run['peak_rss_mb_before']:.0f} before) -> x{result['peak_rss_ratio']:.2f}",
          flush=True)
    return result


PREFIX_TASKS = ("sentiment", "languages", "authors-de")


def prefix_section(model_name: str, n_train: int, n_test: int, device: str, peak: float,
                   tasks: tuple[str, ...] = PREFIX_TASKS) -> list[dict[str, Any]]:
    """The shared prompt prefix on and off, side by side: training and prediction on each task.

    Two fits per task with the library's defaults and ``random_state=0``, one with every prompt
    run whole (``shared_prefix=False``, the way before the prefix was shared) and one with the
    prefix run once per batch; then one fitted model predicts the test texts both ways.
    """
    import torch
    from sklearn.metrics import f1_score

    from benchmarks.tasks import load_task
    from llm_classifier import LLMClassifier
    from llm_classifier.engines.hf.engine import TransformersBackend
    from llm_classifier.engines.hf.scoring import common_prefix_length

    rows = []
    for task in tasks:
        train_x, train_y, test_x, test_y, _ = load_task(task, n_train=n_train, n_test=n_test)
        fits, runs = {}, {}
        for shared in (False, True):
            clf = LLMClassifier(model=model_name, device=device, random_state=0,
                                backend=TransformersBackend(shared_prefix=shared))
            _, seconds = _timed(clf.fit, train_x, train_y)
            history = clf.history_
            per_step = clf.batch_size * clf.gradient_accumulation_steps
            tokens = history["n_tokens"] / history["n_examples"] * per_step * history["n_steps"]
            runs[shared] = {"fit_s": seconds, "train_runtime_s": history["train_runtime"], "n_steps": history["n_steps"],
                            "tokens_per_s": tokens / history["train_runtime"]}
            fits[shared] = clf
        whole, shared = fits[False], fits[True]
        contexts = encoded_prompts(whole, list(train_x[:64]))
        prefix = common_prefix_length(contexts)
        mean_tokens = float(np.mean([len(c) for c in contexts]))
        adapters = whole.backend_.state().adapter, shared.backend_.state().adapter
        adapter_diff = max(float(np.abs(adapters[0][k] - adapters[1][k]).max()) for k in adapters[0])
        f1 = {name: float(f1_score(test_y, clf.predict(test_x), average="macro")) for name, clf in
              (("whole", whole), ("shared", shared))}
        whole.predict_proba(list(test_x[:8]))  # warm-up
        timings, probabilities = {}, {}
        for on in (False, True, False, True):  # alternate, keep the faster of two runs each
            whole.backend_.shared_prefix = on
            proba, seconds = _timed(whole.predict_proba, test_x)
            timings[on] = min(timings.get(on, np.inf), seconds)
            probabilities[on] = proba
        # bf16 results move with any change of batch shape (today's scorer itself moves by about as much between
        # batch sizes); the equality of the two computations is checked in float32, on the same adapter
        model = whole.backend_.inference_model
        exact = {}
        model.float()
        for on in (False, True):
            whole.backend_.shared_prefix = on
            exact[on] = whole.predict_proba(list(test_x[:50]))
        model.to(torch.bfloat16)
        whole.backend_.shared_prefix = False
        flops_per_token = 2.0 * _body_parameters(whole.backend_.inference_model)
        row = {
            "task": task, "n_train": len(train_x), "n_test": len(test_x), "prompt_tokens_mean": mean_tokens,
            "shared_prefix_tokens": prefix,
            "train_whole": runs[False], "train_shared": runs[True],
            "train_tokens_per_s_ratio": runs[True]["tokens_per_s"] / runs[False]["tokens_per_s"],
            "adapter_max_abs_diff": adapter_diff, "macro_f1_whole": f1["whole"], "macro_f1_shared": f1["shared"],
            "predict_s_whole": timings[False], "predict_s_shared": timings[True],
            "predict_speedup": timings[False] / timings[True],
            "predict_max_abs_dp_bf16": float(np.abs(probabilities[True] - probabilities[False]).max()),
            "predict_max_abs_dp_float32": float(np.abs(exact[True] - exact[False]).max()),
            # hardware use: the tokens actually run (the prefix once per batch / per call), 2 FLOPs per weight
            "train_share_of_peak": runs[True]["tokens_per_s"] * (1 - prefix / mean_tokens * (1 - 1 / per_step))
            * 2 * flops_per_token / peak,
        }
        rows.append(row)
        _print_prefix(row)
    return rows


def _body_parameters(model: Any) -> int:
    """Weights every token runs through (all but the embedding and output layers)."""
    return sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n)


def _print_prefix(r: dict[str, Any]) -> None:
    w, s = r["train_whole"], r["train_shared"]
    print(f"prefix {r['task']}: prompts {r['prompt_tokens_mean']:.0f} tokens on average, {r['shared_prefix_tokens']} shared")
    print(f"  training ({w['n_steps']} / {s['n_steps']} steps): whole {w['tokens_per_s']:.0f} tokens/s, shared "
          f"{s['tokens_per_s']:.0f} tokens/s -> x{r['train_tokens_per_s_ratio']:.2f} (target >= 1.8); adapters differ by "
          f"at most {r['adapter_max_abs_diff']:.1e}; macro-F1 {r['macro_f1_whole']:.3f} / {r['macro_f1_shared']:.3f}; "
          f"{100 * r['train_share_of_peak']:.0f}% of the bf16 peak")
    print(f"  prediction of {r['n_test']} texts: whole {r['predict_s_whole']:.1f} s, shared {r['predict_s_shared']:.1f} s "
          f"-> x{r['predict_speedup']:.2f} (target >= 2); max |dp| {r['predict_max_abs_dp_float32']:.1e} in float32 "
          f"(target <= 1e-4), {r['predict_max_abs_dp_bf16']:.1e} in bf16", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Speed benchmark of label scoring and training.")
    parser.add_argument("--out", default="results/speed")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--random-weights", choices=sorted(ARCHITECTURES), help="use random weights of this architecture")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n-texts", type=int, default=64, help="texts scored per configuration")
    parser.add_argument("--n-naive", type=int, default=8, help="texts for the naive scorer (slow)")
    parser.add_argument("--n-seed", type=int, default=8, help="texts for the seed's one-at-a-time generate")
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--sections", default="peak,scoring,training,memory,prefix,predict-memory",
                        help="comma-separated; add 'engines' for vLLM against transformers on 2 and 52 classes "
                             "(needs .venv-vllm, see .ci/setup; benchmarks/vllm_speed.py)")
    parser.add_argument("--engines-n-test", type=int, default=100, help="test texts per task in the engines section")
    parser.add_argument("--skip-plain", action="store_true", help="skip the plain TRL run (slow on CPU)")
    parser.add_argument("--prefix-n-train", type=int, default=500, help="training texts per task in the prefix section")
    parser.add_argument("--prefix-n-test", type=int, default=200, help="test texts per task in the prefix section")
    parser.add_argument("--prefix-tasks", default=",".join(PREFIX_TASKS))
    parser.add_argument("--predict-memory-n-texts", type=int, default=20000,
                        help="texts predicted in the predict-memory section")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(","))
    model_name = args.model
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if args.random_weights:
        model_name = random_weights_model(args.random_weights, Path(tempfile.mkdtemp(prefix="speed-model-")), device)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "model": args.model if not args.random_weights else f"random {args.random_weights}",
                              "device": device, "threads": torch.get_num_threads(), "cpu": _cpu_name()}
    peak = measure_peak(device=device)
    report["peak_bf16_flops_per_s"] = peak
    print(f"peak bf16 matmul: {peak / 1e9:.0f} GFLOP/s", flush=True)
    if "scoring" in sections:
        report["scoring"] = scoring_section(model_name, args.n_texts, args.n_naive, args.n_seed, device, peak)
        _print_scoring(report["scoring"])
    if "training" in sections:
        report["training"] = training_section(model_name, args.train_steps, device, peak, args.skip_plain)
        _print_training(report["training"])
    if "memory" in sections:
        report["memory"] = memory_section(model_name, args.train_steps, device)
        _print_memory(report["memory"])
    if "prefix" in sections:
        report["prefix"] = prefix_section(model_name, args.prefix_n_train, args.prefix_n_test, device, peak,
                                          tuple(args.prefix_tasks.split(",")))
    if "predict-memory" in sections:
        report["predict_memory"] = predict_memory_section(args.predict_memory_n_texts, device)
    if "engines" in sections:
        report["engines"] = engines_section(args.engines_n_test)
    (out / "speed.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {out / 'speed.json'}")


def engines_section(n_test: int) -> list[dict[str, Any]]:
    """vLLM against transformers, side by side in this run: 2 classes (sentiment) and 52 (R52), zero-shot
    and with a 10-step adapter, on the default model (see :mod:`benchmarks.vllm_speed`)."""
    from benchmarks.vllm_speed import VENV_PYTHON, compare

    if not VENV_PYTHON.exists():
        print(f"engines: skipped, {VENV_PYTHON} is missing (bash .ci/setup creates it)", flush=True)
        return []
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for task in ("sentiment", "news-r52"):
            for steps in (0, 10):
                row = compare(task, 100, n_test, steps, Path(work))
                print(f"engines {task} ({row['classes']} classes, max_steps={steps}): transformers "
                      f"{row['transformers_texts_per_s']} texts/s, vLLM {row['vllm_texts_per_s']} texts/s "
                      f"(x{row['vllm_texts_per_s'] / row['transformers_texts_per_s']:.2f}), max |dp| {row['max_abs_dp']:.1e}",
                      flush=True)
                rows.append(row)
    return rows


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" x{os.cpu_count()}"
    except OSError:
        pass
    return "unknown"


def _print_scoring(s: dict[str, Any]) -> None:
    print(f"scoring {s['n_texts']} Reuters texts ({s['mean_prompt_tokens']:.0f} prompt tokens on average)")
    print(f"  52 classes (trie of {s['trie_nodes_52']} nodes): {s['ms_per_text_52_classes']:.1f} ms/text")
    print(f"   2 classes:                          {s['ms_per_text_2_classes']:.1f} ms/text  -> ratio 52/2 = {s['ratio_52_over_2']:.2f} (target <= 2)")
    print(f"  naive, one sequence per class, 52:   {s['ms_per_text_naive_52']:.1f} ms/text -> ours is {s['speedup_vs_naive_52']:.1f}x faster (target >= 10)")
    print(f"  batched greedy generate + parse:     {s['ms_per_text_generate_batched']:.1f} ms/text -> scoring is {s['speedup_vs_generate']:.2f}x as fast (target >= 1); {s['unparseable_generated']} unparseable")
    print(f"  seed's one-at-a-time generate:       {s['ms_per_text_seed_generate']:.1f} ms/text -> scoring is {s['speedup_vs_seed_generate']:.1f}x as fast")
    print(f"  scoring: {s['scoring_flops_per_s'] / 1e9:.0f} GFLOP/s = {100 * s['share_of_peak']:.0f}% of the bf16 peak (target >= 50%)", flush=True)


def _print_training(t: dict[str, Any]) -> None:
    ours = t["ours"]
    print(f"training {t['steps']} steps of batch {t['batch_size']}")
    print(f"  ours:  {ours['tokens_per_s']:.0f} tokens/s, final loss {ours['final_loss']:.3f}, peak RSS {ours['peak_rss_mb']:.0f} MB, "
          f"{100 * ours['share_of_peak']:.0f}% of peak (FLOPs counted as if every prompt ran whole; the prefix section "
          f"gives the share of the FLOPs really run)")
    whole = t["ours_prompts_whole"]
    print(f"  ours, every prompt run whole (shared_prefix=False): {whole['tokens_per_s']:.0f} tokens/s, final loss "
          f"{whole['final_loss']:.3f} -> the shared prefix gives x{t['shared_prefix_speedup']:.2f}")
    if "plain_trl_qlora" in t:
        plain = t["plain_trl_qlora"]
        print(f"  plain TRL SFTTrainer QLoRA: {plain['tokens_per_s']:.0f} tokens/s, final loss {plain['final_loss']:.3f}, peak RSS {plain['peak_rss_mb']:.0f} MB, {100 * plain['share_of_peak']:.0f}% of peak")
        print(f"  -> ours is {t['speedup_tokens_per_s']:.1f}x the plain run's tokens/s (target >= 2)", flush=True)


def _print_memory(m: dict[str, Any]) -> None:
    print(f"training {m['steps']} steps of batch {m['batch_size']} on {m['task']} texts (max_length {m['max_length']})")
    for name in ("plain", "checkpointed"):
        run = m[name]
        gpu = f", peak GPU {run['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in run else ""
        print(f"  {name:>12}: {run['tokens_per_s']:.0f} tokens/s, peak RSS {run['peak_rss_mb']:.0f} MB{gpu}")
    gpu = f", peak GPU x{m['peak_gpu_ratio']:.2f}" if "peak_gpu_ratio" in m else ""
    print(f"  -> gradient checkpointing: peak RSS x{m['peak_rss_ratio']:.2f}{gpu}, tokens/s x{m['tokens_per_s_ratio']:.2f}", flush=True)


if __name__ == "__main__":
    main()
