"""Greedy generation that runs the prompts' shared prefix once.

``model.generate`` left-pads every prompt, so the tokens all prompts start with sit at a
different place in each row and run once per prompt. :func:`greedy_generate` runs them
once per call (:class:`~.scoring.SharedPrefix`), puts each prompt's own tokens after
them (left-padded, masked) and decodes greedily with the key/value cache: the answers
are those of ``generate(do_sample=False)`` up to float rounding.

It is used only where ``generate`` would add nothing to the argmax: when the model's
generation config asks for a logits processor (repetition penalty, banned words, ...),
:func:`plain_greedy` is the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .scoring import _logits, additive_mask, attention_for, cache_keyword, length_batches, split_prefix

#: generation-config fields that change greedy decoding; when one is set, ``model.generate`` decodes.
PROCESSOR_FIELDS = {
    "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "bad_words_ids": None, "suppress_tokens": None,
    "begin_suppress_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "sequence_bias": None, "min_new_tokens": None, "min_length": 0, "encoder_repetition_penalty": 1.0,
    "exponential_decay_length_penalty": None, "renormalize_logits": False, "stop_strings": None,
}


def needs_plain_generate(model: Any) -> bool:
    """True when the model's generation config changes greedy decoding (then ``model.generate`` runs)."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return False
    return any(getattr(config, name, default) not in (default, None) for name, default in PROCESSOR_FIELDS.items())


@torch.inference_mode()
def greedy_generate(model: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos_id: int, pad_id: int,
                    batch_size: int, progress: Any = None) -> list[list[int]]:
    """The greedy continuation of every prompt (its end token included when reached), the shared prefix run once."""
    device = next(model.parameters()).device
    out: list[list[int]] = [[] for _ in prompts]
    prefix, skip = split_prefix(model, prompts, True)
    for batch in length_batches([len(p) for p in prompts], batch_size):
        for row, tokens in zip(batch, _greedy_batch(model, [prompts[i][skip:] for i in batch], prefix, skip,
                                                     max_new_tokens, eos_id, pad_id, device)):
            out[row] = tokens
        if progress is not None:
            progress.update(len(batch))
    return out


def _greedy_batch(model: Any, prompts: list[Sequence[int]], prefix: Any, offset: int, max_new_tokens: int, eos_id: int,
                  pad_id: int, device: Any) -> list[list[int]]:
    batch, width = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    valid = torch.zeros((batch, width), dtype=torch.bool)
    positions = torch.zeros((batch, width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        start = width - len(prompt)
        ids[row, start:] = torch.as_tensor(list(prompt), dtype=torch.long)
        valid[row, start:] = True
        positions[row, start:] = offset + torch.arange(len(prompt))
    lengths = valid.sum(dim=1)
    # keys: the prefix (always visible), then the prompts' own tokens (causal, padding hidden)
    allowed = torch.tril(torch.ones(width, width, dtype=torch.bool))[None] & valid[:, None, :]
    allowed |= torch.eye(width, dtype=torch.bool)[None]  # padding rows see themselves: no empty softmax row
    keys_valid = torch.cat([torch.ones(batch, offset, dtype=torch.bool), valid], dim=1)
    allowed = torch.cat([torch.ones(batch, width, offset, dtype=torch.bool), allowed], dim=2)
    decoder = model.get_decoder()
    if prefix is not None:
        cache = prefix.inputs(batch)  # the decoder's cache arguments, the prefix in them; extended step by step
    else:
        from transformers import DynamicCache

        cache = {cache_keyword(decoder): DynamicCache(), "use_cache": True}
    step_ids, step_positions, step_allowed = ids, positions, allowed[:, None]
    generated = torch.zeros((batch, 0), dtype=torch.long)
    done = torch.zeros(batch, dtype=torch.bool)
    for step in range(max_new_tokens):
        mask = additive_mask(model, step_allowed)
        with attention_for(model, batch, width, offset + width + max_new_tokens):
            hidden = decoder(input_ids=step_ids.to(device), attention_mask=mask.to(device),
                             position_ids=step_positions.to(device), **cache).last_hidden_state
        logits = _logits(model, hidden[:, -1])
        token = logits.argmax(dim=-1).cpu()
        token = torch.where(done, torch.full_like(token, pad_id), token)
        generated = torch.cat([generated, token[:, None]], dim=1)
        done |= token == eos_id
        if bool(done.all()):
            break
        keys_valid = torch.cat([keys_valid, torch.ones(batch, 1, dtype=torch.bool)], dim=1)
        step_ids, step_positions = token[:, None], (offset + lengths + step)[:, None]
        step_allowed = keys_valid[:, None, None, :]
    results = []
    for row in range(batch):
        tokens = generated[row].tolist()
        if eos_id in tokens:
            tokens = tokens[: tokens.index(eos_id) + 1]
        results.append(tokens)
    return results
