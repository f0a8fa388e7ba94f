"""HookedModel: one wrapper over a TransformerLens HookedTransformer and its tokenizer.

It adds an attention-kernel switch (eager | sdpa | flex with the same hooks), padded
tokenisation with a stated BOS rule, hooks that are always removed, and patterns of chosen
heads under any kernel. `interp.loading.load_model` builds it from every supported source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.utilities.activation_functions import apply_softcap
from transformers import PreTrainedTokenizerBase

from interp.fused import fuse_modules
from interp.heads import head_labels
from interp.kernels import head_patterns, set_attn_kernel
from interp.masks import LayerMask, MaskSpec

ORGANISMS = ("organism-ioi", "organism-greater-than", "organism-docstring")
"""Names of the shipped model organisms (folders under `interp/organisms/`)."""

ORGANISMS_DIR = Path(__file__).parent / "organisms"
"""Where shipped organisms live: `<ORGANISMS_DIR>/<name>/` with config, weights, tokenizer."""

_PATTERN_HOOKS = ("hook_pattern", "hook_attn_scores")

Hook = tuple[str | Callable[[str], bool], Callable[..., Any]]


class ModelNotAvailableError(ValueError):
    """A model cannot be loaded: unknown name, weights unreachable offline, organism missing."""


class HookedModel:
    """A HookedTransformer with its tokenizer, an attention-kernel switch and hook helpers."""

    def __init__(
        self,
        model: HookedTransformer,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        name: str | None = None,
        attn_kernel: str = "sdpa",
        masks: MaskSpec = None,
        bos_token: str | None = None,
    ):
        self.model = fuse_modules(model)
        self.tokenizer = tokenizer if tokenizer is not None else model.tokenizer
        self.name = name or model.cfg.model_name
        self._bos_token = bos_token
        self._attn_kernel = "eager"
        self._layer_masks: tuple[LayerMask, ...] = ()
        self.set_attn_kernel(attn_kernel, masks)

    def __repr__(self) -> str:
        return (
            f"HookedModel({self.name!r}, n_layers={self.n_layers}, n_heads={self.n_heads}, "
            f"d_model={self.d_model}, attn_kernel={self.attn_kernel!r}, device={self.device})"
        )

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks."""
        return self.model.cfg.n_layers

    @property
    def n_heads(self) -> int:
        """Query heads per layer."""
        return self.model.cfg.n_heads

    @property
    def d_model(self) -> int:
        """Residual stream width."""
        return self.model.cfg.d_model

    @property
    def d_head(self) -> int:
        """Width of one head's q, k, v and z."""
        return self.model.cfg.d_head

    @property
    def head_labels(self) -> list[str]:
        """`L{layer}H{head}` for every head, layer-major (index `layer * n_heads + head`)."""
        return head_labels(self.n_layers, self.n_heads)

    @property
    def cfg(self) -> HookedTransformerConfig:
        """The TransformerLens config (read it; `hooks` and `per_head_inputs` switch modes)."""
        return self.model.cfg

    @contextmanager
    def per_head_inputs(self) -> Iterator[HookedModel]:
        """Expose each query head's own input (`blocks.{l}.hook_attn_in`, `[batch, seq,
        head, d_model]`) and each MLP's (`hook_mlp_in`) as hooks for the block; then restore.

        Grouped-query attention: a key/value head is shared by several query heads. Inside
        the block the K/V projection is computed per query head (the shared weights
        repeated, exact for the unpatched model), so a change to query head h's input
        changes the query, key and value that h reads and nothing its group-mates read.
        """
        cfg = self.cfg
        previous = (cfg.use_attn_in, cfg.use_hook_mlp_in, cfg.ungroup_grouped_query_attention)
        cfg.use_attn_in = True
        cfg.use_hook_mlp_in = not cfg.attn_only
        cfg.ungroup_grouped_query_attention = cfg.n_key_value_heads is not None
        try:
            yield self
        finally:
            (cfg.use_attn_in, cfg.use_hook_mlp_in, cfg.ungroup_grouped_query_attention) = previous

    def W_O(self, layer: int) -> torch.Tensor:
        """Output weights `[head, d_head, d_model]` of one layer's heads."""
        return self.model.blocks[layer].attn.W_O

    @property
    def device(self) -> torch.device:
        """Device of the embedding weights (where tokens are sent)."""
        return self.model.W_E.device

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype."""
        return self.model.W_E.dtype

    @property
    def attn_kernel(self) -> str:
        """Current attention kernel: `eager`, `sdpa` or `flex`."""
        return self._attn_kernel

    @property
    def layer_masks(self) -> tuple[LayerMask, ...]:
        """The resolved attention mask of every layer (causal unless set otherwise)."""
        return self._layer_masks

    def set_attn_kernel(self, kernel: str, masks: MaskSpec = None) -> None:
        """Switch the attention kernel and mask presets (`masks=None` resets to causal)."""
        self._layer_masks = set_attn_kernel(self.model, kernel, masks)
        self._attn_kernel = kernel

    def to_tokens(
        self, prompts: str | Sequence[str], prepend_bos: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded `(tokens_BS, mask_BS)` on the model's device; mask True at real tokens."""
        tokenizer = self._require_tokenizer()
        if isinstance(prompts, str):
            prompts = [prompts]
        if len(prompts) == 0:
            raise ValueError("prompts is empty: pass at least one prompt")
        ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        if prepend_bos:
            ids = [[self.bos_token_id, *row] for row in ids]
        lengths = [len(row) for row in ids]
        if min(lengths) == 0:
            raise ValueError(f"prompt {lengths.index(0)} is empty and prepend_bos=False")
        if max(lengths) > self.model.cfg.n_ctx:
            longest = lengths.index(max(lengths))
            raise ValueError(
                f"prompt {longest} has {max(lengths)} tokens but {self.name} has a context of "
                f"{self.model.cfg.n_ctx}; shorten it"
            )
        tokens_BS = torch.full((len(ids), max(lengths)), self.pad_token_id, dtype=torch.long)
        mask_BS = torch.zeros(tokens_BS.shape, dtype=torch.bool)
        for row, (token_ids, length) in enumerate(zip(ids, lengths, strict=True)):
            tokens_BS[row, :length] = torch.tensor(token_ids)
            mask_BS[row, :length] = True
        return tokens_BS.to(self.device), mask_BS.to(self.device)

    def _require_tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer, or a ValueError saying how to do without one."""
        if self.tokenizer is None:
            raise ValueError(
                f"model {self.name!r} has no tokenizer; pass token ids instead of strings, or "
                "build HookedModel(model, tokenizer)"
            )
        return self.tokenizer

    @property
    def bos_token_id(self) -> int:
        """BOS id that to_tokens prepends: the model's stated start token where the loader
        gives one (SmolLM2: its pretraining document separator `<|endoftext|>`), else the
        tokenizer's BOS, else its EOS (as in GPT-2)."""
        tokenizer = self._require_tokenizer()
        if self._bos_token is not None:
            return tokenizer.convert_tokens_to_ids(self._bos_token)
        bos = tokenizer.bos_token_id
        bos = tokenizer.eos_token_id if bos is None else bos
        if bos is None:
            raise ValueError(
                f"the tokenizer of {self.name!r} defines neither a BOS nor an EOS token; set "
                "tokenizer.bos_token or call to_tokens(..., prepend_bos=False)"
            )
        return bos

    @property
    def pad_token_id(self) -> int:
        """Pad id that to_tokens uses: the tokenizer's, else BOS (pads are masked anyway)."""
        pad = self.tokenizer.pad_token_id
        return self.bos_token_id if pad is None else pad

    def forward(
        self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits [batch, pos, d_vocab] of token ids, honouring a padding mask."""
        return self.run(tokens, attention_mask)

    __call__ = forward

    def run(
        self,
        tokens: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **forward_kwargs: Any,
    ) -> Any:
        """HookedTransformer forward with the mask moved to the device (extra kwargs passed on)."""
        tokens = tokens.to(self.device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        return self.model(tokens, attention_mask=attention_mask, **forward_kwargs)

    def final_resid(self, tokens_BS: torch.Tensor) -> torch.Tensor:
        """Residual stream `[batch, seq, d_model]` after the last block (before the final
        norm); right-padded prompts need no mask, since no real token attends to a pad."""
        return self.model(tokens_BS, stop_at_layer=self.n_layers)

    def run_from(
        self, resid_BSD: torch.Tensor, start_layer: int, tokens_BS: torch.Tensor
    ) -> torch.Tensor:
        """Final residual stream after running blocks `start_layer..` on `resid_BSD`."""
        extra = {}
        if self.cfg.positional_embedding_type == "shortformer":
            # Shortformer adds position embeddings to every layer's q/k input, not the residual.
            extra["shortformer_pos_embed"] = self.model.pos_embed(tokens_BS)
        return self.model(
            resid_BSD, start_at_layer=start_layer, stop_at_layer=self.n_layers, **extra
        )

    def answer_logits(self, resid_BSD: torch.Tensor, answer_pos_B: torch.Tensor) -> torch.Tensor:
        """Logits `[batch, vocab]` at the answer positions from the final residual stream."""
        rows = torch.arange(len(answer_pos_B), device=resid_BSD.device)
        # Unembedding only the answer positions: the vocabulary projection dominates small models.
        x_B1D = resid_BSD[rows, answer_pos_B.to(resid_BSD.device)][:, None]
        if self.cfg.normalization_type is not None:
            x_B1D = self.model.ln_final(x_B1D)
        logits_B1V = apply_softcap(self.model.unembed(x_B1D), self.cfg.output_logits_soft_cap)
        return logits_B1V[:, 0]

    def layer_z(
        self, tokens_BS: torch.Tensor, attention_mask_BS: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Every layer's `z`, `[layer, batch, seq, head, d_head]`, without gradients."""
        store: dict[int, torch.Tensor] = {}

        def save(z_BSHE: torch.Tensor, hook: Any) -> None:
            store[hook.layer()] = z_BSHE.detach()

        hooks = [(f"blocks.{layer}.attn.hook_z", save) for layer in range(self.n_layers)]
        with torch.no_grad(), self.hooks(hooks):
            self.run(tokens_BS, attention_mask_BS, stop_at_layer=self.n_layers)
        return torch.stack([store[layer] for layer in range(self.n_layers)])

    @contextmanager
    def hooks(self, fwd_hooks: Sequence[Hook]) -> Iterator[HookedModel]:
        """Attach forward hooks for the duration of a `with` block; always removed on exit.

        Hooks on `hook_result` turn on `cfg.use_attn_result` for the block only. Naming a
        pattern hook under a fused kernel is an error (it would silently never fire).
        """
        hook_names = self.model.hook_dict
        for name, _ in fwd_hooks:
            if isinstance(name, str):
                if name not in hook_names:
                    raise ValueError(
                        f"hook {name!r} does not exist in {self.name}; names look like "
                        "'blocks.0.attn.hook_z' (see model.model.hook_dict)"
                    )
                if self.attn_kernel != "eager" and name.endswith(_PATTERN_HOOKS):
                    raise ValueError(
                        f"hook {name!r} only fires under attn_kernel='eager' (now "
                        f"{self.attn_kernel!r}); call set_attn_kernel('eager') or use "
                        "attention_pattern()"
                    )
        result_hooks = [n for n in hook_names if n.endswith("attn.hook_result")]
        wants_result = any(
            name in result_hooks if isinstance(name, str) else any(map(name, result_hooks))
            for name, _ in fwd_hooks
        )
        previous = self.model.cfg.use_attn_result
        self.model.cfg.use_attn_result = previous or wants_result
        try:
            with self.model.hooks(fwd_hooks=list(fwd_hooks)):
                yield self
        finally:
            self.model.cfg.use_attn_result = previous

    def attention_pattern(
        self,
        tokens: torch.Tensor | str | Sequence[str],
        heads: Sequence[tuple[int, int]],
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Patterns [batch, len(heads), q_pos, k_pos] of only the heads asked, under any kernel."""
        if isinstance(tokens, str) or not isinstance(tokens, torch.Tensor):
            tokens, attention_mask = self.to_tokens(tokens)
        heads = [self._check_head(layer, head) for layer, head in heads]
        if not heads:
            raise ValueError("heads is empty: pass (layer, head) pairs, e.g. [(9, 6)]")
        layers = sorted({layer for layer, _ in heads})
        per_layer: dict[int, torch.Tensor] = {}
        if self.attn_kernel == "eager":
            hooks = [
                (f"blocks.{layer}.attn.hook_pattern", self._store(per_layer, layer))
                for layer in layers
            ]
        else:
            # Patterns are recomputed from the q and k the fused kernel consumed.
            rotary = self.model.cfg.positional_embedding_type == "rotary"
            q_name, k_name = ("hook_rot_q", "hook_rot_k") if rotary else ("hook_q", "hook_k")
            hooks = []
            for layer in layers:
                hooks.append((f"blocks.{layer}.attn.{q_name}", self._store(per_layer, layer)))
                hooks.append((f"blocks.{layer}.attn.{k_name}", self._store(per_layer, -1 - layer)))
        with torch.no_grad(), self.hooks(hooks):
            self.run(tokens, attention_mask, stop_at_layer=layers[-1] + 1)
        patterns = []
        for layer, head in heads:
            if self.attn_kernel == "eager":
                patterns.append(per_layer[layer][:, head])
                continue
            attn = self.model.blocks[layer].attn
            q, k = per_layer[layer], per_layer[-1 - layer]
            if self.model.cfg.use_qk_norm and not rotary:
                q, k = attn._apply_qk_norm(q, attn.q_norm), attn._apply_qk_norm(k, attn.k_norm)
            mask = None if attention_mask is None else attention_mask.to(self.device)
            patterns.append(head_patterns(attn, q, k, [head], self._layer_masks[layer], mask)[:, 0])
        return torch.stack(patterns, dim=1)

    def _check_head(self, layer: int, head: int) -> tuple[int, int]:
        """Validate one (layer, head) pair."""
        if not (0 <= layer < self.n_layers and 0 <= head < self.n_heads):
            raise ValueError(
                f"head ({layer}, {head}) does not exist: {self.name} has {self.n_layers} layers "
                f"of {self.n_heads} heads"
            )
        return layer, head

    @staticmethod
    def _store(store: dict[int, torch.Tensor], key: int) -> Callable[..., None]:
        """A hook that saves its activation under `key`."""

        def hook(activation: torch.Tensor, hook: Any) -> None:
            store[key] = activation

        return hook
