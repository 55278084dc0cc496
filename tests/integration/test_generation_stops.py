"""The transformers engine's generation stops at the end token (and keeps going until it).

A tiny random model cannot be trained to say a given answer in a test's budget, so the model's
output is steered instead: a hook on its output layer makes the greedy choice after every
token but ``A`` be ``A``, and after ``A`` the end token. A generator that ignores the end token
would go on with ``A`` again; one that stops too early would return nothing.
"""

from __future__ import annotations

import pytest
import torch

from llm_classifier.engines.hf.engine import TransformersBackend


def _steer(model: torch.nn.Module, a_id: int, end_id: int) -> list[torch.Tensor]:
    """Make the greedy continuation of every sequence ``A <end>``; returns the hooks' captured inputs."""
    seen: list[torch.Tensor] = []  # the input ids of each forward pass, in order

    def steer(module, args, output):
        ids = seen[-1]
        if output.dim() == 2:  # (B, V): the engine computed the logits of each row's last position only
            last = ids[:, -1]
        else:  # (B, T, V): the last T positions of the input
            last = ids[:, -output.shape[1]:] if ids.shape[1] >= output.shape[1] else ids[:, -1:]
        choose = torch.where(last == a_id, torch.full_like(last, end_id), torch.full_like(last, a_id))
        logits = torch.full_like(output, -1e4)
        logits.scatter_(-1, choose.unsqueeze(-1), 1e4)
        return logits

    model.get_input_embeddings().register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.get_output_embeddings().register_forward_hook(steer)
    return seen


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_generation_stops_at_the_end_token(tiny_model: str, shared_prefix: bool) -> None:
    engine = TransformersBackend(shared_prefix=shared_prefix)
    engine.load(tiny_model, quantization=None, dtype="float32")
    tokenizer = engine.tokenizer
    a_id = tokenizer.encode_text(" yes")[0]
    _steer(engine.inference_model, a_id, int(tokenizer.end_id))
    prompts = [tokenizer.encode_prompt(f"Text: {t}\nAnswer:", start=True) for t in ("one", "two words", "three")]
    answers = engine.generate(prompts, max_new_tokens=8, batch_size=2)
    assert answers == [tokenizer.decode([a_id])] * 3  # "A", then the end token: nothing after it
