"""Strict interchange-intervention training (SIIT) of one model organism.

Recipe (after InterpBench, Gupta et al. 2024), one optimiser step:
- behaviour: cross-entropy of the answer-position logits of base and source prompts against
  the high-level graph's target distribution (`circuits.organisms.causal`);
- IIT: for each base prompt, one graph node is picked; its head's `hook_z` (all positions)
  is replaced by that head's `hook_z` on a source prompt of the same token length, and the
  output must match the graph run on the base with that node set to its source value;
- strict: a random subset of the heads outside the circuit (sometimes all of them) get the
  source prompt's `hook_z` or the batch's per-position mean `hook_z`, and the output must not
  change;
- language modelling (so non-circuit heads are not dead): next-token loss on every
  non-answer position of the task prompts and on random repeated token sequences over the
  task vocabulary (which grows previous-token and induction heads).

Training runs on the CPU with one thread by default, where a seed fixes every number;
`circuits.organisms.train` is the command that trains, verifies and writes organisms.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import PreTrainedTokenizerFast

from circuits import tasks
from circuits.organisms.causal import GRAPHS, CausalGraph
from circuits.organisms.tokenizer import TASKS, build_tokenizer


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines an organism; saved as `train_config` in verification.json."""

    task: str
    """Task: `ioi`, `greater-than` or `docstring`."""
    seed: int = 0
    """Seed of the weights, the training prompts and every random draw."""
    n_layers: int = 4
    """Transformer blocks."""
    n_heads: int = 4
    """Heads per layer."""
    d_model: int = 64
    """Residual stream width."""
    d_head: int = 16
    """Width of one head."""
    d_mlp: int = 256
    """MLP hidden width."""
    n_ctx: int = 64
    """Context length."""
    steps: int = 3000
    """Optimiser steps."""
    batch_size: int = 64
    """Base prompts per step (the forward pass holds 4x as many rows)."""
    lr: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, cosine decay)."""
    warmup: int = 200
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    n_prompts: int = 6000
    """Task prompt triples (positive, negative, corrupted) generated for training."""
    positive_fraction: float = 0.5
    """Fraction of base prompts that are positives (the rest negatives and corrupted)."""
    iit_weight: float = 1.0
    """Weight of the IIT loss."""
    strict_weight: float = 1.0
    """Weight of the strict (non-circuit heads irrelevant) loss."""
    strict_head_prob: float = 0.5
    """Probability that a given non-circuit head is intervened on in a strict row."""
    strict_all_prob: float = 0.25
    """Probability that a strict row intervenes on every non-circuit head at once."""
    lm_weight: float = 0.3
    """Weight of next-token loss on the non-answer positions of the task prompts."""
    aux_weight: float = 0.3
    """Weight of next-token loss on random repeated token sequences."""
    aux_batch_size: int = 32
    """Random sequences per step."""
    eval_every: int = 250
    """Steps between progress reports."""


@dataclass(frozen=True)
class Pool:
    """Tokenised task prompts, right-padded with BOS, grouped by token length."""

    tokens_NS: torch.Tensor
    ends_N: torch.Tensor
    """Index of each prompt's last real token (the answer position)."""
    kinds_N: torch.Tensor
    """0 positive, 1 negative, 2 corrupted."""
    by_length: dict[int, torch.Tensor]
    """Token length -> prompt indices of that length."""


def model_config(config: TrainConfig, d_vocab: int) -> dict[str, Any]:
    """The HookedTransformerConfig keyword arguments written to config.json."""
    return {
        "model_name": f"organism-{config.task}",
        "n_layers": config.n_layers,
        "d_model": config.d_model,
        "d_head": config.d_head,
        "n_heads": config.n_heads,
        "d_mlp": config.d_mlp,
        "d_vocab": d_vocab,
        "n_ctx": config.n_ctx,
        "act_fn": "relu",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "default_prepend_bos": True,
        "seed": config.seed,
    }


def tokenize(tokenizer: PreTrainedTokenizerFast, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of prompts with BOS prepended (as `HookedModel.to_tokens` does)."""
    ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    return [[tokenizer.bos_token_id, *row] for row in ids]


def build_pool(data: tasks.TaskData, tokenizer: PreTrainedTokenizerFast, n_ctx: int) -> Pool:
    """All prompts of the task data as one padded tensor with their answer positions."""
    rows, kinds = [], []
    for kind, prompts in enumerate((data.positives, data.negatives, data.corrupted)):
        rows += tokenize(tokenizer, prompts)
        kinds += [kind] * len(prompts)
    width = max(len(r) for r in rows)
    if width > n_ctx:
        raise ValueError(f"task prompts have {width} tokens but n_ctx={n_ctx}; raise n_ctx.")
    tokens_NS = torch.full((len(rows), width), tokenizer.bos_token_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens_NS[i, : len(row)] = torch.tensor(row)
    lengths_N = torch.tensor([len(r) for r in rows])
    by_length = {int(n): torch.nonzero(lengths_N == n).flatten() for n in lengths_N.unique()}
    return Pool(tokens_NS, lengths_N - 1, torch.tensor(kinds), by_length)


def soft_cross_entropy(logits_BV: torch.Tensor, target_BV: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against target distributions."""
    return -(target_BV * logits_BV.log_softmax(-1)).sum(-1).mean()


def lm_loss(
    logits_BSV: torch.Tensor, tokens_BS: torch.Tensor, valid_BS: torch.Tensor
) -> torch.Tensor:
    """Next-token cross-entropy over the positions where `valid_BS` is True (predicting s+1)."""
    losses_BS = F.cross_entropy(
        logits_BSV[:, :-1].transpose(1, 2), tokens_BS[:, 1:], reduction="none"
    )
    valid_BS = valid_BS[:, :-1].float()
    return (losses_BS * valid_BS).sum() / valid_BS.sum().clamp(min=1)


def random_sequences(
    n: int, length: int, token_ids: torch.Tensor, bos: int, generator: torch.Generator
) -> torch.Tensor:
    """BOS then a random token chunk repeated to fill `length` (induction-friendly text)."""
    rows = []
    for _ in range(n):
        chunk_len = int(torch.randint(3, 13, (1,), generator=generator))
        chunk = token_ids[torch.randint(len(token_ids), (chunk_len,), generator=generator)]
        repeats = math.ceil((length - 1) / chunk_len)
        rows.append(torch.cat([torch.tensor([bos]), chunk.repeat(repeats)[: length - 1]]))
    return torch.stack(rows)


class Trainer:
    """One organism's SIIT training state: model, graph, prompt pool, optimiser, generator."""

    def __init__(self, config: TrainConfig, *, progress: bool = True) -> None:
        if config.task not in TASKS:
            raise ValueError(f"unknown task {config.task!r}; use one of {', '.join(TASKS)}.")
        self.config = config
        self.progress = progress
        self.tokenizer = build_tokenizer(config.task)
        self.graph: CausalGraph = GRAPHS[config.task](self.tokenizer.get_vocab())
        data = tasks.get(config.task).generate(self.tokenizer, n=config.n_prompts, seed=config.seed)
        self.pool = build_pool(data, self.tokenizer, config.n_ctx)
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.cfg_dict = model_config(config, len(self.tokenizer))
        # CPU only: training is deterministic there for a seed.
        self.model = HookedTransformer(HookedTransformerConfig(**self.cfg_dict, device="cpu"))
        self.model.train()
        for layer, head in self.graph.heads:
            if not (0 <= layer < config.n_layers and 0 <= head < config.n_heads):
                raise ValueError(
                    f"circuit head L{layer}H{head} of {config.task!r} does not fit a "
                    f"{config.n_layers}x{config.n_heads} model; enlarge the model."
                )
        self.circuit_LH = torch.zeros(config.n_layers, config.n_heads, dtype=torch.bool)
        for layer, head in self.graph.heads:
            self.circuit_LH[layer, head] = True
        special = {self.tokenizer.bos_token_id, self.tokenizer.unk_token_id}
        self.text_ids = torch.tensor(
            [i for i in range(len(self.tokenizer)) if i not in special], dtype=torch.long
        )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.weights = {
            "behaviour": 1.0,
            "iit": config.iit_weight,
            "strict": config.strict_weight,
            "lm": config.lm_weight,
            "aux": config.aux_weight,
        }
        """Loss name -> weight in the total loss."""

    def _lr_factor(self, step: int) -> float:
        warmup, total = self.config.warmup, self.config.steps
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    def _randint(self, high: int, size: int) -> torch.Tensor:
        return torch.randint(high, (size,), generator=self.generator)

    def sample_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Base prompt indices (mostly positives) and same-length source indices."""
        pool = self.pool
        positive = torch.rand(n, generator=self.generator) < self.config.positive_fraction
        n_prompts = len(pool.kinds_N) // 3
        offset = torch.where(positive, 0, n_prompts * (1 + self._randint(2, n)))
        base = offset + self._randint(n_prompts, n)
        lengths = (pool.ends_N[base] + 1).tolist()
        source = torch.stack(
            [
                pool.by_length[n_tokens][self._randint(len(pool.by_length[n_tokens]), 1)[0]]
                for n_tokens in lengths
            ]
        )
        return base, source

    def batch(self, n: int) -> dict[str, Any]:
        """One SIIT batch: tokens of 4n rows (base, source, IIT, strict) with targets and masks."""
        config, pool = self.config, self.pool
        base, source = self.sample_pairs(n)
        base_tokens, base_ends = pool.tokens_NS[base], pool.ends_N[base]
        source_tokens, source_ends = pool.tokens_NS[source], pool.ends_N[source]
        nodes = self.graph.nodes
        node_B = self._randint(len(nodes), n)
        source_values = self.graph.run(source_tokens, source_ends)
        overrides = {
            node.name: (source_values[node.name], node_B == k) for k, node in enumerate(nodes)
        }
        base_target = self.graph.run(base_tokens, base_ends)["output"]
        targets = torch.cat(
            [
                base_target,
                source_values["output"],
                self.graph.run(base_tokens, base_ends, overrides)["output"],
                base_target,
            ]
        )
        # Which head each IIT row patches, and which non-circuit heads each strict row patches.
        iit_BLH = torch.zeros(n, config.n_layers, config.n_heads, dtype=torch.bool)
        for k, node in enumerate(nodes):
            iit_BLH[node_B == k, node.head[0], node.head[1]] = True
        strict_BLH = torch.rand(n, config.n_layers, config.n_heads, generator=self.generator)
        strict_BLH = strict_BLH < config.strict_head_prob
        every_B = torch.rand(n, generator=self.generator) < config.strict_all_prob
        strict_BLH = (strict_BLH | every_B[:, None, None]) & ~self.circuit_LH
        use_mean_B = torch.rand(n, generator=self.generator) < 0.5
        return {
            "tokens": torch.cat([base_tokens, source_tokens, base_tokens, base_tokens]),
            "ends": torch.cat([base_ends, source_ends, base_ends, base_ends]),
            "targets": targets,
            "iit_BLH": iit_BLH,
            "strict_BLH": strict_BLH,
            "use_mean_B": use_mean_B,
            "n": n,
        }

    def hooks(self, batch: dict[str, Any]) -> list[tuple[str, Callable[..., torch.Tensor]]]:
        """hook_z interventions: rows [2n, 3n) IIT, [3n, 4n) strict; sources are rows [n, 2n)."""
        n, ends = batch["n"], batch["ends"]
        real_RS = torch.arange(batch["tokens"].shape[1])[None] <= ends[:, None]

        def patch(z_RSHD: torch.Tensor, hook: Any) -> torch.Tensor:
            layer = hook.layer()
            source_BSHD = z_RSHD[n : 2 * n].detach()
            clean_real = real_RS[: 2 * n, :, None, None].float()
            # Per-position mean over the clean rows' real tokens (as mean ablation does).
            mean_SHD = (z_RSHD[: 2 * n].detach() * clean_real).sum(0) / clean_real.sum(0).clamp(
                min=1
            )
            strict_value = torch.where(
                batch["use_mean_B"][:, None, None, None], mean_SHD[None], source_BSHD
            )
            iit_mask = batch["iit_BLH"][:, layer][:, None, :, None]
            strict_mask = batch["strict_BLH"][:, layer][:, None, :, None]
            iit_rows = torch.where(iit_mask, source_BSHD, z_RSHD[2 * n : 3 * n])
            strict_rows = torch.where(strict_mask, strict_value, z_RSHD[3 * n :])
            return torch.cat([z_RSHD[: 2 * n], iit_rows, strict_rows])

        return [(f"blocks.{layer}.attn.hook_z", patch) for layer in range(self.config.n_layers)]

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Behaviour, IIT, strict and LM losses of one batch, plus answer agreement rates."""
        n, tokens, ends = batch["n"], batch["tokens"], batch["ends"]
        logits_RSV = self.model.run_with_hooks(tokens, fwd_hooks=self.hooks(batch))
        end_logits_RV = logits_RSV[torch.arange(len(tokens)), ends]
        targets = batch["targets"]
        parts = {
            "behaviour": slice(0, 2 * n),
            "iit": slice(2 * n, 3 * n),
            "strict": slice(3 * n, None),
        }
        out = {
            name: soft_cross_entropy(end_logits_RV[rows], targets[rows])
            for name, rows in parts.items()
        }
        positions = torch.arange(tokens.shape[1])[None]
        non_answer = positions[: 2 * n] < ends[: 2 * n, None]
        out["lm"] = lm_loss(logits_RSV[: 2 * n], tokens[: 2 * n], non_answer)
        aux_tokens = random_sequences(
            self.config.aux_batch_size,
            tokens.shape[1],
            self.text_ids,
            self.tokenizer.bos_token_id,
            self.generator,
        )
        out["aux"] = lm_loss(
            self.model(aux_tokens), aux_tokens, torch.ones_like(aux_tokens, dtype=torch.bool)
        )
        # Agreement: the model's top answer is a top answer of the target (ties allowed).
        top_R = end_logits_RV.argmax(-1)
        hit_R = targets.gather(1, top_R[:, None])[:, 0] >= targets.max(-1).values - 1e-6
        for name, rows in parts.items():
            out[f"{name}_acc"] = hit_R[rows].float().mean()
        return out

    def step(self) -> dict[str, torch.Tensor]:
        """One optimiser step on a fresh batch; its losses (`total` included) and agreements."""
        out = self.losses(self.batch(self.config.batch_size))
        loss = sum(weight * out[name] for name, weight in self.weights.items())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.schedule.step()
        return {"total": loss.detach(), **out}

    def train(self) -> dict[str, float]:
        """Run every step; return the last progress report."""
        config = self.config
        report: dict[str, float] = {}
        start = time.time()
        bar = tqdm(range(config.steps), desc=f"organism-{config.task}", disable=not self.progress)
        for step in bar:
            out = self.step()
            if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
                report = {name: round(float(value.detach()), 4) for name, value in out.items()}
                report |= {"step": step + 1, "seconds": round(time.time() - start, 1)}
                if self.progress:
                    bar.write(json.dumps(report))
        self.model.eval()
        return report
