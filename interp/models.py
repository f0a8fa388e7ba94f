"""load_model(...) -> HookedModel: one wrapper over a TransformerLens HookedTransformer.

Sources: a TransformerLens model name (Hub), a local Hugging Face checkpoint directory
(loads with HF_HUB_OFFLINE=1), an existing HookedTransformer, or a shipped model organism
(`interp/organisms/<name>/`). Hub and local checkpoints get TransformerLens's default weight
processing (fold LayerNorm, centre writing weights and unembedding, fold value biases), as
`HookedTransformer.from_pretrained` does; see docs/interp.md for why HookedTransformer.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import HfHubHTTPError
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import loading_from_pretrained as tl_loading
from transformer_lens.utilities.activation_functions import softcap_enabled
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES
from transformer_lens.utilities.multi_gpu import get_device_for_block_index
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from interp.fused import fuse_modules
from interp.kernels import KERNELS, head_patterns, set_attn_kernel
from interp.masks import LayerMask, MaskSpec

ORGANISMS = ("organism-ioi", "organism-greater-than", "organism-docstring")
"""Names of the shipped model organisms (folders under `interp/organisms/`)."""

ORGANISMS_DIR = Path(__file__).parent / "organisms"
"""Where shipped organisms live: `<ORGANISMS_DIR>/<name>/` with config, weights, tokenizer."""

_ORGANISM_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# Tried in order as the BOS token of an organism's tokenizer.json.
_BOS_CANDIDATES = ("<|endoftext|>", "<bos>", "<s>", "[BOS]", "<|bos|>")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
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
    ):
        self.model = fuse_modules(model)
        self.tokenizer = tokenizer if tokenizer is not None else model.tokenizer
        self.name = name or model.cfg.model_name
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
        return [
            f"L{layer}H{head}" for layer in range(self.n_layers) for head in range(self.n_heads)
        ]

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
        """BOS id that to_tokens prepends: the tokenizer's BOS, else its EOS (as in GPT-2)."""
        tokenizer = self._require_tokenizer()
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


def load_model(
    name_or_path: str | Path | HookedTransformer,
    *,
    attn_kernel: str = "sdpa",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    n_devices: int = 1,
) -> HookedModel:
    """Load a Hub name, local HF checkpoint dir, HookedTransformer or organism as HookedModel.

    `n_devices > 1` splits the blocks over that many GPUs from `device` (default `cuda`):
    weights are loaded on the CPU, then each GPU gets a contiguous run of blocks.
    """
    if attn_kernel not in KERNELS:
        raise ValueError(f"attn_kernel={attn_kernel!r} is not one of {KERNELS}")
    if n_devices < 1:
        raise ValueError(f"n_devices={n_devices}: use 1 (one device) or more GPUs")
    torch_dtype = _resolve_dtype(dtype)
    if isinstance(name_or_path, HookedTransformer):
        model = name_or_path
        if dtype is not None:
            model = model.to(torch_dtype, print_details=False)
        if n_devices > 1:
            _split_layers(model, n_devices, device or "cuda")
        elif device is not None:
            model = model.to(device, print_details=False)
        return HookedModel(model, attn_kernel=attn_kernel)
    if not isinstance(name_or_path, str | Path):
        raise TypeError(
            f"name_or_path={name_or_path!r}: pass a model name, a directory or a HookedTransformer"
        )
    resolved_device = _resolve_device(device)
    load_device = "cpu" if n_devices > 1 else resolved_device
    name = str(name_or_path)
    if name in ORGANISMS:
        model, tokenizer = _load_organism(name, load_device, torch_dtype)
    elif Path(name).is_dir():
        model, tokenizer = _load_local_dir(Path(name), load_device, torch_dtype)
        name = Path(name).resolve().name
    else:
        model = _load_hub(name, load_device, torch_dtype)
        tokenizer = model.tokenizer
    if n_devices > 1:
        _split_layers(model, n_devices, resolved_device)
    return HookedModel(model, tokenizer, name=name, attn_kernel=attn_kernel)


def _split_layers(
    model: HookedTransformer, n_devices: int, device: str | torch.device = "cuda"
) -> HookedTransformer:
    """Spread the blocks over `n_devices` GPUs from `device`, contiguous runs (in place).

    Each block goes where TransformerLens's forward sends the residual stream
    (`get_device_for_block_index`): embeddings on the first GPU, the final norm and the
    unembedding with the last block. This is the layer-wise split an accelerate
    `device_map="balanced"` gives a decoder of equal blocks.
    """
    base = torch.device(device)
    available = torch.cuda.device_count() - (base.index or 0) if base.type == "cuda" else 0
    if n_devices > available:
        raise ValueError(
            f"n_devices={n_devices} needs {n_devices} CUDA devices from {base}, but "
            f"{max(available, 0)} are visible; lower n_devices or pick another device"
        )
    cfg = model.cfg
    cfg.device = str(base)
    cfg.n_devices = n_devices
    first = get_device_for_block_index(0, cfg)
    last = get_device_for_block_index(cfg.n_layers - 1, cfg)
    for name, module in model.named_children():
        if name == "blocks":
            for index, block in enumerate(module):
                block.to(get_device_for_block_index(index, cfg))
        else:
            module.to(last if name in ("ln_final", "unembed") else first)
    return model


def _resolve_device(device: str | torch.device | None) -> str:
    """The requested device, or CUDA when available, else CPU."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """A torch dtype from None (float32), a name such as "bfloat16", or a dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype.removeprefix("torch.")
    if name not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def _processing_flags(cfg: HookedTransformerConfig) -> dict[str, bool]:
    """from_pretrained's default weight processing, minus what the architecture forbids."""
    shortformer = cfg.positional_embedding_type == "shortformer"
    post_norm = cfg.original_architecture in POST_NORM_ARCHITECTURES
    return {
        "fold_ln": not (shortformer or post_norm)
        and cfg.normalization_type not in ("LNPre", "RMSPre"),
        "center_writing_weights": not (shortformer or post_norm),
        "center_unembed": not shortformer and not softcap_enabled(cfg.output_logits_soft_cap),
        "fold_value_biases": True,
    }


def _freeze(model: HookedTransformer) -> HookedTransformer:
    """Eval mode, parameters without gradients: activations can still be differentiated."""
    model.eval()
    model.requires_grad_(False)
    return model


def _build(
    cfg: HookedTransformerConfig,
    state_dict: dict[str, torch.Tensor],
    tokenizer: PreTrainedTokenizerBase,
    tokenizer_source: str,
) -> HookedTransformer:
    """A HookedTransformer from a config and a TransformerLens-format state dict."""
    # Without a tokenizer name TransformerLens does not fetch a tokenizer from the Hub.
    cfg.tokenizer_name = None
    model = HookedTransformer(cfg, move_to_device=False)
    model.load_and_process_state_dict(state_dict, **_processing_flags(cfg))
    model.move_model_modules_to_device()
    _freeze(model)
    # Set directly: HookedTransformer.set_tokenizer reloads the tokenizer by name, which
    # fails for in-memory tokenizers and reaches for the Hub.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.bos_token
    tokenizer.padding_side = "right"
    model.tokenizer = tokenizer
    model.cfg.tokenizer_name = tokenizer_source
    model.cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    return model


def _load_local_dir(
    path: Path, device: str, dtype: torch.dtype
) -> tuple[HookedTransformer, PreTrainedTokenizerBase]:
    """A HookedTransformer from a Hugging Face `save_pretrained` directory, fully offline."""
    path = path.resolve()
    if not (path / "config.json").is_file():
        raise ModelNotAvailableError(
            f"{path} has no config.json: a local model must be a Hugging Face checkpoint "
            "directory, e.g. written by model.save_pretrained(DIR) and "
            "tokenizer.save_pretrained(DIR)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelNotAvailableError(
            f"{path} has no usable tokenizer ({err}); save one there with "
            "tokenizer.save_pretrained(DIR)"
        ) from None
    hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    hf_model.eval()
    config = json.loads((path / "config.json").read_text())
    # transformers 5 no longer writes GPT-2's n_ctx, which TransformerLens reads.
    if config.get("model_type") == "gpt2":
        config.setdefault("n_ctx", config.get("n_positions", 1024))
    # TransformerLens picks some architectures from substrings of the name ("llama",
    # "gemma"), so the config is handed over under a neutral directory name.
    with tempfile.TemporaryDirectory() as scratch:
        neutral = Path(scratch) / "checkpoint"
        neutral.mkdir()
        (neutral / "config.json").write_text(json.dumps(config))
        try:
            cfg = tl_loading.get_pretrained_model_config(
                str(neutral),
                hf_cfg=hf_model.config.to_dict(),
                fold_ln=True,
                device=device,
                dtype=dtype,
            )
        except NotImplementedError as err:
            raise ModelNotAvailableError(
                f"{path}: TransformerLens cannot convert this architecture ({err})"
            ) from None
        state_dict = tl_loading.get_pretrained_state_dict(
            str(neutral), cfg, hf_model=hf_model, dtype=dtype
        )
    cfg.model_name = path.name
    return _build(cfg, state_dict, tokenizer, str(path)), tokenizer


def _load_hub(name: str, device: str, dtype: torch.dtype) -> HookedTransformer:
    """A TransformerLens-named model through HookedTransformer.from_pretrained."""
    try:
        official = tl_loading.get_official_model_name(name)
    except ValueError:
        raise ModelNotAvailableError(
            f"{name!r} is not a directory, a shipped organism ({', '.join(ORGANISMS)}) or a "
            "model name TransformerLens knows (e.g. gpt2, gpt2-medium, attn-only-4l, "
            "pythia-160m); check the spelling or pass a local checkpoint directory"
        ) from None
    try:
        return _freeze(HookedTransformer.from_pretrained(official, device=device, dtype=dtype))
    except (OSError, HfHubHTTPError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelNotAvailableError(
            f"cannot load the weights of {name!r} ({official}): {reason}. Without Hub access, "
            f"download it on a connected machine (`hf download {official}`) and copy the "
            "Hugging Face cache, or save it there with AutoModelForCausalLM.from_pretrained("
            f"'{official}').save_pretrained(DIR) plus its tokenizer and call load_model(DIR); "
            "offline, the shipped organisms (organism-ioi, ...) need no download"
        ) from None


def _load_organism(
    name: str, device: str, dtype: torch.dtype
) -> tuple[HookedTransformer, PreTrainedTokenizerBase]:
    """A shipped organism: HookedTransformerConfig JSON, safetensors weights, tokenizer.json."""
    folder = ORGANISMS_DIR / name
    missing = [f for f in _ORGANISM_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelNotAvailableError(
            f"organism {name!r} is not installed: {folder} lacks {', '.join(missing)}. "
            "Organisms are written by the circuits organism training script; until then use "
            "a local checkpoint directory or a Hub model"
        )
    cfg_dict = json.loads((folder / "config.json").read_text())
    cfg_dict.update(device=device, dtype=dtype, init_weights=False)
    try:
        cfg = HookedTransformerConfig.from_dict(cfg_dict)
    except TypeError as err:
        raise ModelNotAvailableError(
            f"{folder / 'config.json'} is not a HookedTransformerConfig dict ({err})"
        ) from None
    tokenizer = _organism_tokenizer(folder / "tokenizer.json")
    state_dict = load_file(str(folder / "model.safetensors"))
    return _build(cfg, state_dict, tokenizer, str(folder)), tokenizer


def _organism_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """An HF fast tokenizer from tokenizer.json, special tokens from tokenizer_config.json.

    Without tokenizer_config.json (or without a BOS there), BOS and EOS are the first known
    BOS-like token of the vocabulary.
    """
    config_path = path.with_name("tokenizer_config.json")
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    special = {
        key: config[key]
        for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        if isinstance(config.get(key), str)
    }
    if "bos_token" in special:
        special.setdefault("eos_token", special["bos_token"])
        return PreTrainedTokenizerFast(tokenizer_file=str(path), **special)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path), **special)
    vocab = tokenizer.get_vocab()
    bos = next((token for token in _BOS_CANDIDATES if token in vocab), None)
    if bos is None:
        raise ModelNotAvailableError(
            f"{path} defines none of the BOS tokens {_BOS_CANDIDATES} and {config_path.name} "
            "names no bos_token; add one to its vocabulary"
        )
    tokenizer.bos_token = bos
    tokenizer.eos_token = bos
    return tokenizer
