"""The discrete SAE's option types and ``SAETrainingConfig``; light (no torch, no SAELens),
so that the CLI builds its options without loading either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Activation",
    "DecoderNorm",
    "EncoderNorm",
    "Init",
    "SAETrainingConfig",
    "Trainer",
    "check_choice",
]

Activation = Literal["relu", "topk"]
DecoderNorm = Literal["columns", "seed_rows", "none"]
EncoderNorm = Literal["latents", "none"]
Init = Literal["tied", "seed"]
Trainer = Literal["fast", "sae_lens"]
_FLOAT_DTYPES = ("float32", "float64", "bfloat16", "float16")


def check_choice(name: str, value: object, choices: Any) -> None:
    """Raise unless ``value`` is one of the ``Literal`` type ``choices``."""
    allowed = choices.__args__
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}.")


@dataclass(frozen=True)
class SAETrainingConfig:
    """How the discrete SAE is trained; doubles as CLI options and is saved with every result.

    Defaults follow the seed paper (O'Neill & Bui 2024) except the norm constraints and the
    initialisation, where they use the standard choices; `SAETrainingConfig.like_seed_code()`
    gives the seed code's choices.
    """

    n_latents: int = 200
    """Number of SAE latents, i.e. the size of the code alphabet."""
    l1_coefficient: float = 0.02
    """Lambda in the loss MSE + lambda * mean L1 of the latents (the seed paper used 0.05 for
    docstring). The MSE is the mean over all elements; the L1 norm is summed over latents and
    averaged over (prompt, head) rows."""
    lr: float = 1e-3
    """Adam learning rate (constant)."""
    n_epochs: int = 500
    """Full-batch Adam steps."""
    n_train_prompts: int | None = 10
    """Prompts drawn (with the seed) from the pool to train on, all their heads; None: all."""
    activation: Activation = "relu"
    """`relu`, or `topk` (keep the `k` largest latents) as an alternative code source."""
    k: int = 1
    """Latents kept per input for `activation="topk"`."""
    decoder_norm: DecoderNorm = "columns"
    """`columns`: unit-norm dictionary vector per latent; `seed_rows`: the seed code's
    normalisation of the other axis (each input coordinate across latents); `none`."""
    encoder_norm: EncoderNorm = "none"
    """`latents`: unit-norm encoder vector per latent (the seed code); `none`."""
    init: Init = "tied"
    """`tied`: random unit dictionary vectors, encoder = decoder transposed, zero biases;
    `seed`: the seed code's independent normal weights and uniform encoder bias."""
    dtype: str = "float32"
    """Training dtype; inputs (e.g. bfloat16 captures) are cast to it."""
    device: str | None = None
    """Training device; None follows the input tensor's device."""
    trainer: Trainer = "fast"
    """`fast`: this module's loop (hand-derived gradients, fused Adam). `sae_lens`: SAELens's
    SAETrainer on the registered training class; slower, and it clips gradients to norm 1."""

    def __post_init__(self) -> None:
        for name in ("n_latents", "n_epochs", "k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1.")
        if self.n_train_prompts is not None and self.n_train_prompts < 1:
            raise ValueError(f"n_train_prompts={self.n_train_prompts} must be >= 1 or None (all).")
        if self.l1_coefficient < 0 or self.lr <= 0:
            raise ValueError(
                f"l1_coefficient={self.l1_coefficient} must be >= 0 and lr={self.lr} > 0."
            )
        if self.activation == "topk" and self.k > self.n_latents:
            raise ValueError(f"k={self.k} must not exceed n_latents={self.n_latents}.")
        check_choice("activation", self.activation, Activation)
        check_choice("decoder_norm", self.decoder_norm, DecoderNorm)
        check_choice("encoder_norm", self.encoder_norm, EncoderNorm)
        check_choice("init", self.init, Init)
        check_choice("trainer", self.trainer, Trainer)
        if self.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"dtype={self.dtype!r} must be one of {list(_FLOAT_DTYPES)}.")

    @classmethod
    def like_seed_code(cls, **overrides: object) -> SAETrainingConfig:
        """The seed code's constraints and initialisation (row-normalised decoder and all)."""
        seed = {"decoder_norm": "seed_rows", "encoder_norm": "latents", "init": "seed"}
        return cls(**{**seed, **overrides})  # type: ignore[arg-type]
