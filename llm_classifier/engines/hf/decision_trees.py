"""Training examples as token trees: a context computed once, its decisions after it, one pass.

A :class:`~llm_classifier.engines.base.TrainExample` is a context followed by decisions,
each a prefix (context, no loss) and candidates (continuations). :func:`flatten_example`
lays one out as a tree of tokens: the context as a chain, then each decision's prefix and
candidates as a branch from the context's last token (the candidates of one decision share
their common tokens, as prediction's label trie does). A token sees its ancestors only, at
the position it would have in its own ``context + prefix + candidate`` sequence, so one
forward pass over the tree gives every decision exactly what one sequence per
``(context + prefix, candidate)`` pair would, for the context's cost once. The output
layer is applied only where a candidate token is predicted ("edges").

:class:`DecisionCollator` batches trees: the tokens all contexts of a batch start with run
once (a shared prefix), then the examples are packed into one sequence with block-diagonal
tree attention (up to :data:`PACK_MAX_TOKENS`), or into as few rows as the longest tree's
width holds, after the prefix's cache; batches of plain chains (one decision, one candidate
computed, no prefix) run one padded row each with the causal 2-D mask. :func:`decision_loss` turns a batch into the objective's loss.
"""

from __future__ import annotations

from typing import Any

import torch

from .scoring import LOGIT_ELEMENTS, SharedPrefix, _logits, additive_mask, attention_for, common_prefix_length

__all__ = ["DecisionCollator", "PACK_MAX_TOKENS", "decision_loss", "flatten_example"]

#: A batch whose contexts share a prefix is packed into one sequence when it has at most this many
#: tokens: the prefix once, then every example after it, each attending to the prefix and to its own
#: tree only (no padding, one pass). A longer batch runs as padded rows after the prefix's cache.
PACK_MAX_TOKENS = 1024


def flatten_example(context: list[int], decisions: list[Any], objective: str) -> dict[str, list[Any]]:
    """One example as a token tree (a dataset row); see the module docstring.

    ``"answer"`` puts only each decision's target candidate in the tree; the class objectives all
    candidates. Returns ``input_ids``, ``parents`` (-1 for the first token), ``positions``,
    ``context_length``, the edges (``edge_rows``: the node whose output predicts ``edge_tokens``;
    ``edge_decisions``), per decision ``decision_weights``, ``decision_targets`` (a candidate) and
    ``decision_lengths`` (the target's tokens), and for the class objectives ``path_edges`` /
    ``path_candidates`` (the edges on each candidate's path) and ``candidate_decisions``.
    """
    tokens = [int(t) for t in context]
    parents = list(range(-1, len(tokens) - 1))
    positions = list(range(len(tokens)))
    row: dict[str, list[Any]] = {name: [] for name in (
        "edge_rows", "edge_tokens", "edge_decisions", "decision_weights", "decision_targets", "decision_lengths",
        "path_edges", "path_candidates", "candidate_decisions")}

    def add(token: int, parent: int) -> int:
        tokens.append(int(token))
        parents.append(parent)
        positions.append(positions[parent] + 1)
        return len(tokens) - 1

    # A leaf (a candidate's last token that no other candidate continues) predicts nothing: it is not
    # fed, its log-probability is read from its parent's output. A lone chain (one decision, one
    # candidate computed) keeps its last token, as a plain context + continuation sequence has it.
    lone = len(decisions) == 1 and objective == "answer"
    n_candidates = 0
    for d, decision in enumerate(decisions):
        anchor = len(context) - 1
        for token in decision.prefix:
            anchor = add(token, anchor)
        used = [decision.target] if objective == "answer" else list(range(len(decision.candidates)))
        inner = {tuple(decision.candidates[c][:depth]) for c in used for depth in range(1, len(decision.candidates[c]))}
        nodes: dict[tuple[int, ...], tuple[int, int]] = {}  # candidate prefix -> (node or -1 if not fed, edge)
        for c in used:
            if c == decision.target:
                row["decision_targets"].append(n_candidates)
            row["candidate_decisions"].append(d)
            parent = anchor
            candidate = [int(t) for t in decision.candidates[c]]
            for depth, token in enumerate(candidate, start=1):
                key = tuple(candidate[:depth])
                if key not in nodes:
                    fed = lone or key in inner
                    nodes[key] = (add(token, parent) if fed else -1, len(row["edge_rows"]))
                    row["edge_rows"].append(parent)
                    row["edge_tokens"].append(token)
                    row["edge_decisions"].append(d)
                node, edge = nodes[key]
                row["path_edges"].append(edge)
                row["path_candidates"].append(n_candidates)
                parent = node
            n_candidates += 1
        row["decision_weights"].append(float(decision.weight))
        row["decision_lengths"].append(len(decision.candidates[decision.target]))
    if objective == "answer":  # every edge is on its decision's target: no paths needed
        for name in ("path_edges", "path_candidates", "candidate_decisions"):
            del row[name]
    return {"input_ids": tokens, "parents": parents, "positions": positions, "context_length": len(context),
            "length": len(tokens), **row}


def _is_chain(feature: dict[str, Any]) -> bool:
    """The tree is one sequence (each token's parent is the token before it)."""
    return all(parent == index - 1 for index, parent in enumerate(feature["parents"]))


def _ancestry(parents: list[int], skip: int, context_length: int) -> torch.Tensor:
    """``[n, n]`` bool over the nodes from ``skip`` on: (i, j) true when node j is i or an ancestor of i."""
    n = len(parents) - skip
    allowed = torch.zeros(n, n, dtype=torch.bool)
    chain = context_length - skip
    allowed[:chain, :chain] = torch.tril(torch.ones(chain, chain, dtype=torch.bool))
    for node in range(chain, n):
        allowed[node] = allowed[parents[node + skip] - skip]
        allowed[node, node] = True
    return allowed


class DecisionCollator:
    """Batch :func:`flatten_example` rows for :func:`decision_loss` (see the module docstring).

    Parameters
    ----------
    pad_id : int
    shared_prefix : bool, default=False
        Run the tokens that all the batch's contexts start with once.
    """

    def __init__(self, pad_id: int, shared_prefix: bool = False):
        self.pad_id = pad_id
        self.shared_prefix = shared_prefix

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        skip = 0
        if self.shared_prefix:
            skip = common_prefix_length([f["input_ids"][: f["context_length"]] for f in features])
        if skip and skip + sum(len(f["input_ids"]) - skip for f in features) <= PACK_MAX_TOKENS:
            batch, columns = self._packed(features, skip)
        else:
            batch, columns = self._rows(features, skip)
            if skip:
                batch["prefix_ids"] = torch.tensor(features[0]["input_ids"][:skip], dtype=torch.long)
        batch.update(_targets(features, columns))
        return batch

    def _packed(self, features: list[dict[str, Any]], skip: int) -> tuple[dict[str, Any], list[torch.Tensor]]:
        """One sequence: the ``skip`` shared tokens, then each example's own nodes (block-diagonal trees)."""
        total = skip + sum(len(f["input_ids"]) - skip for f in features)
        ids = torch.empty(total, dtype=torch.long)
        positions = torch.empty(total, dtype=torch.long)
        allowed = torch.zeros(total, total, dtype=torch.bool)
        ids[:skip] = torch.tensor(features[0]["input_ids"][:skip], dtype=torch.long)
        positions[:skip] = torch.arange(skip)
        allowed[:skip, :skip] = torch.tril(torch.ones(skip, skip, dtype=torch.bool))
        columns, start = [], skip
        for feature in features:
            n = len(feature["input_ids"]) - skip
            stop = start + n
            ids[start:stop] = torch.tensor(feature["input_ids"][skip:], dtype=torch.long)
            positions[start:stop] = torch.tensor(feature["positions"][skip:], dtype=torch.long)
            allowed[start:stop, :skip] = True
            allowed[start:stop, start:stop] = _ancestry(feature["parents"], skip, feature["context_length"])
            columns.append(start - skip + torch.arange(len(feature["input_ids"])))  # node -> column (nodes >= skip)
            start = stop
        return {"input_ids": ids[None], "position_ids": positions[None], "allowed": allowed[None, None]}, columns

    def _rows(self, features: list[dict[str, Any]], skip: int) -> tuple[dict[str, Any], list[torch.Tensor]]:
        """Right-padded rows after the shared prefix's cache: one per chain (a causal mask), or for trees as few
        rows as the longest tree's width holds (first fit, longest first; block-diagonal tree masks)."""
        lengths = [len(f["input_ids"]) - skip for f in features]
        width = max(lengths)
        if all(_is_chain(f) for f in features):
            ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(features), width), dtype=torch.long)
            for row, feature in enumerate(features):
                ids[row, : lengths[row]] = torch.tensor(feature["input_ids"][skip:], dtype=torch.long)
                attention[row, : lengths[row]] = 1
            columns = [row * width - skip + torch.arange(len(f["input_ids"])) for row, f in enumerate(features)]
            return {"input_ids": ids, "attention_mask": attention}, columns
        rows: list[list[int]] = []  # the examples of each row
        free: list[int] = []
        for index in sorted(range(len(features)), key=lambda i: -lengths[i]):
            row = next((r for r, room in enumerate(free) if room >= lengths[index]), None)
            if row is None:
                rows.append([])
                free.append(width)
                row = len(rows) - 1
            rows[row].append(index)
            free[row] -= lengths[index]
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        allowed = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)  # padding sees itself
        columns: list[torch.Tensor] = [torch.empty(0)] * len(features)
        for row, members in enumerate(rows):
            start = 0
            for index in members:
                feature, stop = features[index], start + lengths[index]
                ids[row, start:stop] = torch.tensor(feature["input_ids"][skip:], dtype=torch.long)
                positions[row, start:stop] = torch.tensor(feature["positions"][skip:], dtype=torch.long)
                allowed[row, start:stop, start:stop] = _ancestry(feature["parents"], skip, feature["context_length"])
                columns[index] = row * width + start - skip + torch.arange(len(feature["input_ids"]))
                start = stop
        return {"input_ids": ids, "position_ids": positions, "allowed": allowed[:, None]}, columns


def _targets(features: list[dict[str, Any]], columns: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The edges (flat index of the predicting output, token, decision) and the decisions, numbered over the batch."""
    out: dict[str, list[torch.Tensor]] = {name: [] for name in (
        "edge_index", "edge_tokens", "edge_decisions", "decision_weights", "decision_targets", "decision_lengths",
        "path_edges", "path_candidates", "candidate_decisions")}
    n_edges = n_decisions = n_candidates = 0
    for feature, column in zip(features, columns):
        tensor = {name: torch.as_tensor(feature[name]) for name in out if name in feature}
        out["edge_index"].append(column[torch.as_tensor(feature["edge_rows"], dtype=torch.long)])
        out["edge_tokens"].append(tensor["edge_tokens"].long())
        out["edge_decisions"].append(tensor["edge_decisions"].long() + n_decisions)
        out["decision_weights"].append(tensor["decision_weights"].float())
        out["decision_lengths"].append(tensor["decision_lengths"].float())
        out["decision_targets"].append(tensor["decision_targets"].long() + n_candidates)
        if "path_edges" in feature:
            out["path_edges"].append(tensor["path_edges"].long() + n_edges)
            out["path_candidates"].append(tensor["path_candidates"].long() + n_candidates)
            out["candidate_decisions"].append(tensor["candidate_decisions"].long() + n_decisions)
            n_candidates += len(feature["candidate_decisions"])
        else:
            n_candidates += len(feature["decision_targets"])
        n_edges += len(feature["edge_rows"])
        n_decisions += len(feature["decision_weights"])
    return {name: torch.cat(values) for name, values in out.items() if values}


def _hidden(model: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """``[B * T, H]``: the decoder's output at every input position (the shared prefix's cache in front)."""
    ids = inputs["input_ids"]
    batch, width = ids.shape
    prefix = SharedPrefix(model, inputs["prefix_ids"]) if "prefix_ids" in inputs else None
    extra = {"use_cache": False} if prefix is None else prefix.inputs(batch)
    if "allowed" in inputs:
        allowed = inputs["allowed"] if prefix is None else prefix.attention(inputs["allowed"])
        mask, keys = additive_mask(model, allowed), allowed.shape[-1]
        extra["position_ids"] = inputs["position_ids"]
    else:
        mask = inputs["attention_mask"] if prefix is None else prefix.attention(inputs["attention_mask"])
        keys = mask.shape[-1]
    with attention_for(model, batch, width, keys):
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask, **extra).last_hidden_state
    return hidden.reshape(batch * width, -1)


def _edge_log_probs(model: Any, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``log p(token | output row)`` of each edge, the output layer a chunk of rows at a time."""
    chunk = max(1, LOGIT_ELEMENTS // model.config.vocab_size)
    values = [-torch.nn.functional.cross_entropy(_logits(model, hidden[start: start + chunk]),
                                                 tokens[start: start + chunk], reduction="none")
              for start in range(0, len(tokens), chunk)]
    return torch.cat(values)


def decision_loss(model: Any, inputs: dict[str, Any], objective: str) -> torch.Tensor:
    """The batch's loss under ``objective`` (see :class:`~llm_classifier.engines.base.TrainRequest`).

    ``"answer"``: the mean over the target tokens of their negative log-likelihood, each weighted
    by its decision's weight. ``"class"``: per decision, the cross-entropy of the target under its
    candidates' summed log-probabilities normalised over them; ``"answer+class"`` adds the target's
    mean token negative log-likelihood; the weighted mean over decisions.
    """
    hidden = _hidden(model, inputs)
    device = hidden.device
    edge_log_probs = _edge_log_probs(model, hidden[inputs["edge_index"].to(device)], inputs["edge_tokens"].to(device))
    weights = inputs["decision_weights"].to(device)
    if objective == "answer":
        return -(edge_log_probs * weights[inputs["edge_decisions"].to(device)]).mean()
    path_candidates, groups = inputs["path_candidates"].to(device), inputs["candidate_decisions"].to(device)
    scores = torch.zeros(len(groups), dtype=edge_log_probs.dtype, device=device).index_add(
        0, path_candidates, edge_log_probs[inputs["path_edges"].to(device)])  # [C] summed log-probs
    n_decisions = len(weights)
    peak = torch.full((n_decisions,), -torch.inf, dtype=scores.dtype, device=device).scatter_reduce(
        0, groups, scores.detach(), reduce="amax")
    normaliser = torch.zeros(n_decisions, dtype=scores.dtype, device=device).index_add(
        0, groups, torch.exp(scores - peak[groups])).log() + peak
    target = scores[inputs["decision_targets"].to(device)]
    losses = normaliser - target
    if objective == "answer+class":
        losses = losses - target / inputs["decision_lengths"].to(device)
    return (losses * weights).mean()
