"""The discrete SAE: one SAE shared by all heads, registered as the SAELens architecture "discrete".

Layout follows SAELens: `W_enc` [d_in, d_sae], `b_enc` [d_sae], `W_dec` [d_sae, d_in],
`b_dec` [d_in]. `b_dec` is the tied pre-encoder / post-decoder bias
(`apply_b_dec_to_input=True`). A latent's dictionary vector (its decoder direction) is a row of
`W_dec`, i.e. a column of the [d_in, d_sae] dictionary matrix `W_dec.T`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from sae_lens import (
    SAE,
    SAEConfig,
    TrainingSAE,
    TrainingSAEConfig,
    register_sae_class,
    register_sae_training_class,
)
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY
from sae_lens.saes.sae import TrainCoefficientConfig, TrainStepInput, TrainStepOutput
from sae_lens.saes.topk_sae import TopK
from sae_lens.util import str_to_dtype
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from saes.config import Activation, DecoderNorm, EncoderNorm, Init, check_choice

ARCHITECTURE = "discrete"
"""Name under which the SAE is registered with SAELens (the `architecture` key of cfg.json)."""


_NORM_EPS = 1e-12
_DEFAULT_INIT_SEED = 0


@dataclass
class DiscreteSAEConfig(SAEConfig):
    """SAELens config of the discrete SAE; saved as `cfg.json` next to the weights."""

    activation: Activation = "relu"
    """`relu`: ReLU of the pre-activations; `topk`: the `k` largest pre-activations, ReLU'd."""
    k: int = 1
    """Latents kept per input when `activation="topk"`; ignored for `relu`."""
    decoder_norm: DecoderNorm = "columns"
    """Unit-norm constraint on the decoder during training. `columns`: each latent's dictionary
    vector (a row of `W_dec`) has norm 1. `seed_rows`: the seed code's quirk, each input
    coordinate's weights across latents (a column of `W_dec`) has norm 1. `none`: unconstrained."""
    encoder_norm: EncoderNorm = "none"
    """Unit-norm constraint on the encoder. `latents`: each latent's encoder vector (a column of
    `W_enc`) has norm 1, as in the seed code. `none`: unconstrained."""

    @classmethod
    def architecture(cls) -> str:
        """The SAELens architecture name."""
        return ARCHITECTURE

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("activation", self.activation, Activation)
        check_choice("decoder_norm", self.decoder_norm, DecoderNorm)
        check_choice("encoder_norm", self.encoder_norm, EncoderNorm)
        if self.activation == "topk" and not 1 <= self.k <= self.d_sae:
            raise ValueError(f"k={self.k} must be between 1 and d_sae={self.d_sae} for topk.")


class _DiscreteSAEMixin:
    """Weights, encoding, decoding and norm constraints shared by the inference and training SAE."""

    cfg: DiscreteSAEConfig
    W_enc: nn.Parameter
    b_enc: nn.Parameter
    W_dec: nn.Parameter
    b_dec: nn.Parameter
    dtype: torch.dtype
    device: torch.device

    def initialize_weights(self) -> None:
        """Create the parameters; random values from a fixed generator (no global RNG use)."""
        d_in, d_sae = self.cfg.d_in, self.cfg.d_sae
        kwargs = {"dtype": self.dtype, "device": self.device}
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae, **kwargs))
        self.b_enc = nn.Parameter(torch.empty(d_sae, **kwargs))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_in, **kwargs))
        self.b_dec = nn.Parameter(torch.empty(d_in, **kwargs))
        # Loading builds the SAE on the meta device and assigns the stored weights afterwards.
        if self.device.type != "meta":
            self.reset_parameters(torch.Generator().manual_seed(_DEFAULT_INIT_SEED))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator, init: Init = "tied") -> None:
        """Re-initialise from `generator` (drawn on CPU, so every device gets the same weights).

        `tied`: random unit dictionary vectors, `W_enc = W_dec.T`, zero biases.
        `seed`: as the seed code, independent normal encoder and decoder weights and an encoder
        bias uniform in +-1/sqrt(d_in). Both then satisfy the configured norm constraints.
        """
        d_in, d_sae = self.cfg.d_in, self.cfg.d_sae
        if init == "tied":
            W_dec = F.normalize(torch.randn(d_sae, d_in, generator=generator), dim=1)
            W_enc = W_dec.T.clone()
            b_enc = torch.zeros(d_sae)
        elif init == "seed":
            W_enc = torch.randn(d_sae, d_in, generator=generator).T
            bound = 1.0 / math.sqrt(d_in)
            b_enc = torch.rand(d_sae, generator=generator) * (2 * bound) - bound
            W_dec = torch.randn(d_in, d_sae, generator=generator).T
        else:
            check_choice("init", init, Init)
        for param, value in (
            (self.W_enc, W_enc),
            (self.b_enc, b_enc),
            (self.W_dec, W_dec),
            (self.b_dec, torch.zeros(d_in)),
        ):
            param.copy_(value)
        self.apply_norm_constraints_()

    def norm_constraints(self) -> list[tuple[nn.Parameter, int]]:
        """(weight, dim) pairs whose slices along `dim` are kept at unit norm."""
        constraints = []
        if self.cfg.decoder_norm == "columns":
            constraints.append((self.W_dec, 1))
        elif self.cfg.decoder_norm == "seed_rows":
            constraints.append((self.W_dec, 0))
        if self.cfg.encoder_norm == "latents":
            constraints.append((self.W_enc, 0))
        return constraints

    @torch.no_grad()
    def apply_norm_constraints_(self) -> None:
        """Rescale the constrained weights back to unit norm (after each optimiser step)."""
        for weight, dim in self.norm_constraints():
            weight.div_(weight.norm(dim=dim, keepdim=True).clamp_min(_NORM_EPS))

    @torch.no_grad()
    def project_gradients_(self) -> None:
        """Remove the gradient component along each unit-norm vector (moves along the sphere)."""
        for weight, dim in self.norm_constraints():
            weight.grad.sub_(weight * (weight.grad * weight).sum(dim=dim, keepdim=True))

    def get_activation_fn(self) -> nn.Module:
        """ReLU, or SAELens's TopK (top-k pre-activations, ReLU'd) for `activation="topk"`."""
        return TopK(self.cfg.k) if self.cfg.activation == "topk" else nn.ReLU()

    def encode_with_hidden_pre(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Latent activations and pre-activations of `x` [..., d_in]."""
        sae_in = self.process_sae_in(x)  # type: ignore[attr-defined]
        hidden_pre = self.hook_sae_acts_pre(sae_in @ self.W_enc + self.b_enc)  # type: ignore[attr-defined]
        return self.hook_sae_acts_post(self.activation_fn(hidden_pre)), hidden_pre  # type: ignore[attr-defined]

    def encode(self, x: Tensor) -> Tensor:
        """Latent activations of `x` [..., d_in] -> [..., d_sae]."""
        return self.encode_with_hidden_pre(x)[0]

    def decode(self, feature_acts: Tensor) -> Tensor:
        """Reconstruction [..., d_in] from latent activations [..., d_sae]."""
        sae_out = self.hook_sae_recons(feature_acts @ self.W_dec + self.b_dec)  # type: ignore[attr-defined]
        sae_out = self.run_time_activation_norm_fn_out(sae_out)  # type: ignore[attr-defined]
        return self.reshape_fn_out(sae_out, self.d_head)  # type: ignore[attr-defined]

    def fold_W_dec_norm(self) -> None:
        """Refuse for TopK: rescaling latents changes which ones are kept (as SAELens's TopKSAE)."""
        if self.cfg.activation == "topk":
            raise NotImplementedError(
                "Folding decoder norms changes the top-k selection of a topk discrete SAE."
            )
        super().fold_W_dec_norm()  # type: ignore[misc]


class DiscreteSAE(_DiscreteSAEMixin, SAE[DiscreteSAEConfig]):
    """One SAE shared by all heads; a head's code is its argmax latent (see `saes.codes`)."""


@dataclass
class DiscreteTrainingSAEConfig(DiscreteSAEConfig, TrainingSAEConfig):
    """Config of the SAELens training class (for `SAETrainer`): inference fields plus the loss."""

    l1_coefficient: float = 0.02
    """Weight of the mean (over inputs) L1 norm of the latent activations."""
    decoder_init_norm: float | None = None
    """Unused: the discrete SAE initialises its decoder at unit norm (see `reset_parameters`)."""


class DiscreteTrainingSAE(_DiscreteSAEMixin, TrainingSAE[DiscreteTrainingSAEConfig]):
    """SAELens training class: the seed code's loss (element-mean MSE + l1 * mean L1).

    The norm constraints are applied at the start of every forward pass and gradients along the
    unit-norm vectors are projected out by tensor hooks, as in the seed code, so SAETrainer
    optimises the same objective as `saes.train_discrete_sae`'s own loop.
    """

    def __init__(self, cfg: DiscreteTrainingSAEConfig, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)
        self.mse_loss_fn = self._element_mean_mse
        for weight, dim in self.norm_constraints():
            weight.register_hook(_tangent_projection(weight, dim))

    def _element_mean_mse(self, preds: Tensor, target: Tensor) -> Tensor:
        # SAELens sums the per-item loss over d_in; dividing here gives the seed's element mean.
        return (preds - target).pow(2) / self.cfg.d_in

    def get_coefficients(self) -> dict[str, float | TrainCoefficientConfig]:
        """The L1 coefficient, without warm-up."""
        return {"l1": self.cfg.l1_coefficient}

    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        """Re-impose the norm constraints (the previous step moved the weights), then the loss."""
        self.apply_norm_constraints_()
        return super().training_forward_pass(step_input)

    def calculate_aux_loss(
        self,
        step_input: TrainStepInput,
        feature_acts: Tensor,
        hidden_pre: Tensor,
        sae_out: Tensor,
    ) -> dict[str, Tensor]:
        """The L1 penalty: coefficient times the mean over inputs of the latents' L1 norm."""
        l1 = feature_acts.abs().sum(dim=-1).mean()
        return {"l1_loss": step_input.coefficients["l1"] * l1}


def _tangent_projection(weight: Tensor, dim: int):
    def hook(grad: Tensor) -> Tensor:
        unit = weight.detach()
        return grad - unit * (grad * unit).sum(dim=dim, keepdim=True)

    return hook


def load_discrete_sae(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: str | None = None
) -> DiscreteSAE:
    """Load a discrete SAE saved by `sae.save_model(path)` (cfg.json + sae_weights.safetensors)."""
    path = Path(path)
    cfg_path, weights_path = path / SAE_CFG_FILENAME, path / SAE_WEIGHTS_FILENAME
    for required in (cfg_path, weights_path):
        if not required.is_file():
            raise FileNotFoundError(
                f"{required} not found; a saved SAE directory holds {SAE_CFG_FILENAME} and "
                f"{SAE_WEIGHTS_FILENAME} (write them with sae.save_model(path))."
            )
    try:
        cfg_dict = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{cfg_path} is not valid JSON ({error}); save the SAE again.") from error
    if not isinstance(cfg_dict, dict):
        raise ValueError(f"{cfg_path} holds a JSON {type(cfg_dict).__name__}, not an SAE config.")
    architecture = cfg_dict.get("architecture")
    if architecture != ARCHITECTURE:
        raise ValueError(
            f"{path} holds a {architecture!r} SAE, not {ARCHITECTURE!r}; load it with "
            f"sae_lens.SAE.load_from_disk(path) and take codes with saes.codes."
        )
    if dtype is not None:
        cfg_dict["dtype"] = dtype
    cfg = DiscreteSAEConfig.from_dict({**cfg_dict, "device": "meta"})
    sae = DiscreteSAE(cfg)
    try:
        weights = load_file(weights_path, device="cpu")
    except SafetensorError as error:
        raise ValueError(
            f"{weights_path} is not a readable safetensors file ({error}); it may be truncated. "
            "Save the SAE again."
        ) from error
    sae.load_state_dict(weights, assign=True)
    return sae.to(device=torch.device(device), dtype=str_to_dtype(cfg.dtype))


def _register() -> None:
    # Registration is SAELens's extension point; guarding keeps module reloads from failing.
    if ARCHITECTURE not in SAE_CLASS_REGISTRY:
        register_sae_class(ARCHITECTURE, DiscreteSAE, DiscreteSAEConfig)
    if ARCHITECTURE not in SAE_TRAINING_CLASS_REGISTRY:
        register_sae_training_class(ARCHITECTURE, DiscreteTrainingSAE, DiscreteTrainingSAEConfig)


_register()
