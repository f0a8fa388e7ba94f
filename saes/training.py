"""Train the discrete SAE on per-head activations held in memory (full batch, as the seed code)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import torch
from sae_lens import LoggingConfig, SAETrainer
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata
from sae_lens.util import str_to_dtype
from torch import Tensor
from tqdm.auto import trange

from saes._checks import check_acts, check_finite
from saes.config import SAETrainingConfig
from saes.discrete_sae import (
    DiscreteSAE,
    DiscreteSAEConfig,
    DiscreteTrainingSAE,
    DiscreteTrainingSAEConfig,
)

# Eager steps before a CUDA graph of the training step is captured.
_GRAPH_WARMUP_STEPS = 3


def train_discrete_sae(
    acts_PHD: Tensor,
    config: SAETrainingConfig | None = None,
    seed: int = 0,
    *,
    progress: bool = True,
) -> DiscreteSAE:
    """Train one SAE shared by all heads on `config.n_train_prompts` prompts drawn with `seed`."""
    config = config or SAETrainingConfig()
    check_acts(acts_PHD, "acts_PHD")
    n_prompts, n_heads, d_model = acts_PHD.shape
    generator = torch.Generator().manual_seed(seed)
    prompt_idx = _draw_prompts(n_prompts, config.n_train_prompts, generator)
    device = torch.device(config.device) if config.device is not None else acts_PHD.device
    x_ND = acts_PHD[prompt_idx.to(acts_PHD.device)].reshape(-1, d_model)
    x_ND = x_ND.to(device=device, dtype=str_to_dtype(config.dtype)).contiguous()
    check_finite(
        x_ND, "acts_PHD (training prompts)", n_heads=n_heads, prompt_ids=prompt_idx.tolist()
    )

    sae_cfg = DiscreteSAEConfig(
        d_in=d_model,
        d_sae=config.n_latents,
        dtype=config.dtype,
        device=str(device),
        activation=config.activation,
        k=config.k,
        decoder_norm=config.decoder_norm,
        encoder_norm=config.encoder_norm,
    )
    sae = DiscreteSAE(sae_cfg)
    sae.reset_parameters(generator, config.init)
    with _threads_for(x_ND, config.n_latents):
        if config.trainer == "fast":
            _fit_fast(sae, x_ND, config, progress=progress)
        else:
            _fit_sae_lens(sae, x_ND, config)
    sae.eval()
    losses = _final_losses(sae, x_ND, config.l1_coefficient)
    _check_converged(sae, x_ND, losses, config)
    sae.cfg.metadata = SAEMetadata(
        **sae.cfg.metadata.to_dict(),
        training_config=asdict(config),
        training_seed=seed,
        train_prompt_indices=prompt_idx.tolist(),
        n_heads=n_heads,
        **losses,
    )
    return sae


class TrainingDivergedError(ValueError):
    """SAE training ended with non-finite weights or loss."""


def _check_converged(
    sae: DiscreteSAE, x_ND: Tensor, losses: dict[str, float], config: SAETrainingConfig
) -> None:
    """Raise if training diverged (non-finite weights or loss), naming the likely cause."""
    finite_weights = all(bool(torch.isfinite(p).all()) for p in sae.parameters())
    if finite_weights and all(math.isfinite(v) for v in losses.values()):
        return
    rms = float(x_ND.double().pow(2).mean().sqrt())
    raise TrainingDivergedError(
        f"SAE training diverged (final MSE {losses['final_mse']:.3g}, "
        f"{'finite' if finite_weights else 'non-finite'} weights) on activations of RMS "
        f"{rms:.3g} in {config.dtype}. Rescale the activations to order 1 (the "
        "sae-calibrated method standardises each head), lower the learning rate "
        f"(lr={config.lr:g}, CLI --sae-lr) or train in float64 (--sae-dtype float64)."
    )


def _draw_prompts(n_prompts: int, n_train: int | None, generator: torch.Generator) -> Tensor:
    if n_train is None:
        return torch.arange(n_prompts)
    if n_train > n_prompts:
        raise ValueError(
            f"n_train_prompts={n_train} but acts_PHD has only {n_prompts} prompts; lower "
            f"n_train_prompts or pass None to train on all of them."
        )
    return torch.randperm(n_prompts, generator=generator)[:n_train].sort().values


SMALL_WORK_ELEMENTS = 1 << 20
"""CPU training whose widest tensor (rows x max(d_in, latents)) is below this runs on one
torch thread: at organism sizes each op is microseconds, and on a shared 2-core machine the
threads of a multi-threaded op wait for each other (benchmarks/bench_small_work.py)."""


@contextmanager
def _threads_for(x_ND: Tensor, n_latents: int) -> Iterator[None]:
    """One torch thread for small CPU work, the current setting otherwise; restored after."""
    small = x_ND.shape[0] * max(x_ND.shape[1], n_latents) < SMALL_WORK_ELEMENTS
    if x_ND.is_cuda or not small or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _fit_fast(sae: DiscreteSAE, x_ND: Tensor, config: SAETrainingConfig, *, progress: bool) -> None:
    """Full-batch Adam with hand-derived gradients: no autograd graph, preallocated buffers.

    Autograd would also form the [N, d_in] gradient of the centred input (one more matmul of
    the same size as the five needed here); the gradient of the tied bias only needs its sum.
    On CUDA the step is captured once in a CUDA graph and replayed: at the seed paper's shapes
    a step is a few microseconds of GPU work behind ~20 kernel launches.
    """
    W_enc, b_enc, W_dec, b_dec = sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec
    params = [W_enc, b_enc, W_dec, b_dec]
    for param in params:
        param.grad = torch.zeros_like(param)
    use_graph = x_ND.is_cuda and config.n_epochs > _GRAPH_WARMUP_STEPS
    optimizer = torch.optim.Adam(params, lr=config.lr, fused=True, capturable=use_graph)
    n_rows = x_ND.shape[0]
    mse_grad_scale = 2.0 / x_ND.numel()
    l1_grad = config.l1_coefficient / n_rows
    tied_bias = sae.cfg.apply_b_dec_to_input
    topk = config.k if config.activation == "topk" else None
    # Reused buffers: fresh [N, d_in] tensors of GPT-2 XL size would be mmapped and
    # page-faulted on every step.
    sae_in = torch.empty_like(x_ND) if tied_bias else x_ND
    d_out = torch.empty_like(x_ND)
    acts = x_ND.new_empty(n_rows, sae.cfg.d_sae)
    d_pre = torch.empty_like(acts)
    inactive = torch.empty_like(acts, dtype=torch.bool)

    def step() -> None:
        if tied_bias:
            torch.sub(x_ND, b_dec, out=sae_in)
        torch.addmm(b_enc, sae_in, W_enc, out=acts)  # pre-activations until masked
        _mark_inactive(acts, topk, out=inactive)
        acts.masked_fill_(inactive, 0.0)
        # d loss / d reconstruction for the element-mean MSE
        torch.addmm(b_dec, acts, W_dec, out=d_out).sub_(x_ND).mul_(mse_grad_scale)
        torch.mm(acts.T, d_out, out=W_dec.grad)
        torch.sum(d_out, dim=0, out=b_dec.grad)
        torch.mm(d_out, W_dec.T, out=d_pre).add_(l1_grad).masked_fill_(inactive, 0.0)
        torch.mm(sae_in.T, d_pre, out=W_enc.grad)
        torch.sum(d_pre, dim=0, out=b_enc.grad)
        if tied_bias:
            b_dec.grad.sub_(W_enc @ b_enc.grad)
        sae.project_gradients_()
        optimizer.step()
        sae.apply_norm_constraints_()

    with torch.no_grad():
        if use_graph:
            # Warm-up steps (Adam's state is created lazily) run on a side stream, as CUDA
            # graph capture requires; they count as epochs, and capturing runs nothing.
            side = torch.cuda.Stream(x_ND.device)
            side.wait_stream(torch.cuda.current_stream(x_ND.device))
            with torch.cuda.stream(side):
                for _ in range(_GRAPH_WARMUP_STEPS):
                    step()
            torch.cuda.current_stream(x_ND.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            n_steps, run_step = config.n_epochs - _GRAPH_WARMUP_STEPS, graph.replay
        else:
            n_steps, run_step = config.n_epochs, step
        for _ in trange(n_steps, disable=not progress, desc="SAE training", leave=False):
            run_step()
    for param in params:
        param.grad = None


def _mark_inactive(hidden_pre: Tensor, topk: int | None, *, out: Tensor) -> None:
    """Write where latents are off into `out`: not positive, or outside the top `topk`."""
    torch.le(hidden_pre, 0, out=out)
    if topk is not None:
        top = hidden_pre.topk(topk, dim=-1).indices
        out |= torch.ones_like(out).scatter_(-1, top, False)


_INFERENCE_FIELDS = (
    "d_in",
    "d_sae",
    "dtype",
    "device",
    "apply_b_dec_to_input",
    "activation",
    "k",
    "decoder_norm",
    "encoder_norm",
)


def _fit_sae_lens(sae: DiscreteSAE, x_ND: Tensor, config: SAETrainingConfig) -> None:
    """SAELens's SAETrainer on the registered training class, fed the full batch every step."""
    train_cfg = DiscreteTrainingSAEConfig(
        **{name: getattr(sae.cfg, name) for name in _INFERENCE_FIELDS},
        l1_coefficient=config.l1_coefficient,
    )
    training_sae = DiscreteTrainingSAE(train_cfg)
    training_sae.load_state_dict(sae.state_dict())
    n_rows = x_ND.shape[0]
    trainer_cfg = SAETrainerConfig(
        total_training_samples=n_rows * config.n_epochs,
        train_batch_size_samples=n_rows,
        lr=config.lr,
        lr_end=config.lr,
        device=str(x_ND.device),
        logger=LoggingConfig(log_to_wandb=False),
    )
    SAETrainer(trainer_cfg, training_sae, data_provider=itertools.repeat(x_ND)).fit()
    training_sae.apply_norm_constraints_()
    sae.load_state_dict(training_sae.state_dict())


@torch.no_grad()
def _final_losses(sae: DiscreteSAE, x_ND: Tensor, l1_coefficient: float) -> dict[str, float]:
    acts = sae.encode(x_ND)
    mse = float((sae.decode(acts) - x_ND).pow(2).mean())
    l1 = float(acts.abs().sum(dim=-1).mean())
    return {"final_mse": mse, "final_l1": l1, "final_loss": mse + l1_coefficient * l1}
