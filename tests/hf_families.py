"""Tiny Hugging Face checkpoints of every architecture family load_model converts, with
every weight class made non-trivial (norm gains and biases away from the identity), and the
logits parity of load_model against the Hugging Face forward of the same weights.

`python tests/hf_families.py` prints the parity table (family x kernel: max |centred logit
difference|); the tests in test_loading_parity.py assert it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 96
"""Word-level vocabulary of the tiny checkpoints (ids 0-3 are special tokens)."""

_LLAMA_LIKE = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,  # grouped-query attention
    "max_position_embeddings": 128,
    "head_dim": 16,
}

FAMILIES: dict[str, Callable[[], PreTrainedModel]] = {
    "gpt2": lambda: GPT2LMHeadModel(
        GPT2Config(vocab_size=VOCAB, n_layer=2, n_head=4, n_embd=64, n_positions=128)
    ),
    "llama-gqa": lambda: LlamaForCausalLM(LlamaConfig(**_LLAMA_LIKE, rope_theta=100000.0)),
    "neox": lambda: GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=VOCAB,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=128,
            rotary_pct=0.25,
        )
    ),
    "gemma": lambda: GemmaForCausalLM(GemmaConfig(**_LLAMA_LIKE, hidden_activation="gelu")),
    "mistral": lambda: MistralForCausalLM(MistralConfig(**_LLAMA_LIKE, sliding_window=None)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**_LLAMA_LIKE)),
}
"""Architecture family -> a random tiny model of it."""


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `w4`..`w95` with BOS/EOS/PAD/UNK at ids 0-3."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<bos>", "<eos>", "<pad>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), VOCAB)})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def perturbed(family: str, seed: int = 0) -> PreTrainedModel:
    """A tiny model of `family` whose norm gains, norm biases and linear biases are all
    far from their initial identity / zero values (as in a trained model)."""
    torch.manual_seed(seed)
    model = FAMILIES[family]().eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            is_norm = any(part in name for part in ("norm", "ln_", ".ln"))
            if is_norm and name.endswith("weight"):
                param.add_(0.5 * torch.randn_like(param))
            elif name.endswith("bias"):
                param.copy_(0.2 * torch.randn_like(param))
    return model


def save_checkpoint(family: str, directory: Path, seed: int = 0) -> Path:
    """Write the perturbed model and the word tokenizer as a `save_pretrained` directory."""
    perturbed(family, seed).save_pretrained(directory)
    word_tokenizer().save_pretrained(directory)
    return directory


def max_centred_difference(
    directory: Path, kernel: str, n_prompts: int = 3, seq: int = 12
) -> float:
    """Max |centred logit difference| between load_model(directory) and the HF forward."""
    from transformers import AutoModelForCausalLM

    from interp import load_model

    hooked = load_model(directory, attn_kernel=kernel, device="cpu")
    reference = AutoModelForCausalLM.from_pretrained(directory).eval()
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(4, VOCAB, (n_prompts, seq), generator=generator)
    tokens[:, 0] = 0
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[0, seq // 2 :] = False  # one right-padded prompt
    with torch.no_grad():
        ours = hooked(tokens, mask)
        theirs = reference(tokens, attention_mask=mask.long()).logits
    ours = ours - ours.mean(-1, keepdim=True)
    theirs = theirs - theirs.mean(-1, keepdim=True)
    return (ours[mask] - theirs[mask]).abs().max().item()


def main() -> None:
    """Print the parity table: family x kernel."""
    torch.set_num_threads(1)
    kernels = ("eager", "sdpa", "flex")
    print("| family | " + " | ".join(kernels) + " |")
    print("|---|" + "---|" * len(kernels))
    with tempfile.TemporaryDirectory() as scratch:
        for family in FAMILIES:
            directory = save_checkpoint(family, Path(scratch) / family)
            cells = [f"{max_centred_difference(directory, k):.1e}" for k in kernels]
            print(f"| {family} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
