"""A fitted classifier's probabilities from a vLLM OpenAI-compatible server (direct direction).

1. In the vLLM environment, write the checkpoint to serve (the base with the adapter merged,
   dequantised as the transformers engine computes it) and start the server on it:

       python examples/vllm_client.py checkpoint model/        # prints the checkpoint directory
       vllm serve "$(python examples/vllm_client.py checkpoint model/)" --served-model-name clf \\
           --enable-prefix-caching --block-size 32 --dtype float32 --skip-tokenizer-init

2. Anywhere with llm_classifier (the tokenizer is read from the base; no model is loaded):

       python examples/vllm_client.py predict model/ --url http://localhost:8000 "a fine film" "dull"

The client renders each text's prompt exactly as ``predict_proba`` does, and asks the
completions endpoint, for every inner node of the answers' token trie, the log-probabilities of
that node's children (``logprob_token_ids``, vLLM's extension of the API, with token ids as
keys); an answer's score is the sum along its path, then the classifier's calibration and a
softmax over the classes, as in ``predict_proba``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import log_softmax

from llm_classifier import LLMClassifier
from llm_classifier.formulations.registry import get_direction


def answer_trie(answers: list[list[int]]) -> tuple[list[int], list[int], list[list[int]]]:
    """(token, parent) of each trie node, and each answer's path of nodes."""
    tokens, parents, index, paths = [], [], {}, []
    for answer in answers:
        parent, path = -1, []
        for token in answer:
            if (parent, token) not in index:
                index[parent, token] = len(tokens)
                tokens.append(token)
                parents.append(parent)
            parent = index[parent, token]
            path.append(parent)
        paths.append(path)
    return tokens, parents, paths


def node_logprobs(url: str, model: str, prompt: list[int], children: list[int]) -> dict[int, float]:
    """log p(child | prompt) of each child token, from one completions request."""
    body = {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "logprobs": 1,
            "logprob_token_ids": children, "return_tokens_as_token_ids": True}
    request = urllib.request.Request(f"{url}/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        top = json.load(response)["choices"][0]["logprobs"]["top_logprobs"][0]
    return {int(key.removeprefix("token_id:")): value for key, value in top.items()}


def predict_proba(clf: LLMClassifier, texts: list[str], url: str, model: str, workers: int = 16) -> np.ndarray:
    """``clf.predict_proba(texts)``, with the model's log-probabilities from the server."""
    if clf.layout_.formulation != "direct":
        raise ValueError("This client scores the direct direction (answers after the text's prompt).")
    direction = get_direction("direct")
    prompts = direction.encoder(clf.backend_.tokenizer, clf.layout_, clf.choice_ids_, clf.max_length,
                                clf.truncation).encode(texts).ids
    tokens, parents, paths = answer_trie([list(a) for a in clf.choice_ids_])
    children: dict[int, list[int]] = {}
    for node, parent in enumerate(parents):
        children.setdefault(parent, []).append(node)
    prefix = {-1: []}
    for node, parent in enumerate(parents):
        prefix[node] = prefix[parent] + [tokens[node]]
    asks = [(i, node) for i in range(len(prompts)) for node in children]
    with ThreadPoolExecutor(workers) as pool:
        replies = pool.map(lambda ask: node_logprobs(url, model, prompts[ask[0]] + prefix[ask[1]],
                                                     [tokens[c] for c in children[ask[1]]]), asks)
        node_scores = np.zeros((len(prompts), len(tokens)))
        for (i, node), reply in zip(asks, replies):
            for child in children[node]:
                node_scores[i, child] = reply[tokens[child]]
    scores = np.stack([node_scores[:, path].sum(axis=1) for path in paths], axis=1)
    if clf.calibration_ is not None:
        scores = clf.calibration_.apply(scores)
    return np.exp(log_softmax(scores, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    checkpoint = sub.add_parser("checkpoint", help="write and print the checkpoint vLLM serves (needs vLLM)")
    checkpoint.add_argument("artifact")
    predict = sub.add_parser("predict", help="probabilities of texts from a running server")
    predict.add_argument("artifact")
    predict.add_argument("texts", nargs="+")
    predict.add_argument("--url", default="http://localhost:8000")
    predict.add_argument("--model", default="clf", help="the server's --served-model-name")
    args = parser.parse_args()
    if args.command == "checkpoint":
        print(LLMClassifier.load(args.artifact, backend="vllm").backend_.checkpoint)
        return
    clf = LLMClassifier.load(args.artifact)  # loads the tokenizer; the model is loaded only if it predicts
    proba = predict_proba(clf, args.texts, args.url, args.model)
    json.dump([dict(zip(map(str, clf.classes_), row.round(6).tolist())) for row in proba], sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
