"""Integer codes from an SAE: the argmax latent per (prompt, head), the top-k latents, and
code statistics.

Any SAELens SAE can serve as the code source:
- residual-space SAEs (the discrete SAE, or e.g. an `attn_out` / `resid` SAE with
  `d_in == d_model`) are applied to each head's result vector `z_h @ W_O[h]` on its own:
  `codes(sae, acts_PHD)`;
- per-layer `hook_z` SAEs (`d_in == n_heads * d_head`) see one head at a time: the head's z
  in its own slot and zeros in every other head's slot: `codes_from_hook_z(saes, z_PHd)`.

A row whose latents are all zero ("dead row") has no argmax. `dead_rows="preact"` (default)
takes the argmax of the pre-activations for those rows, i.e. the latent closest to firing;
`dead_rows="zero"` gives them code 0, as the seed code's `np.argmax` of a zero row does.
For ReLU and TopK SAEs, "preact" makes every code the argmax of the pre-activations.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from sae_lens import SAE
from torch import Tensor

from saes._checks import check_acts, check_finite

DeadRows = Literal["preact", "zero"]

_BATCH_ELEMENTS = 2**24
"""Default bound on the elements of one batch's widest tensor (64 MiB in float32)."""


@dataclass(frozen=True)
class CodeStats:
    """How an SAE codes a set of per-head activations."""

    n_rows: int
    """(prompt, head) rows coded."""
    n_latents: int
    """Latents of the SAE (the size of the code alphabet)."""
    n_codes_used: int
    """Distinct codes assigned."""
    code_counts: list[int]
    """Rows per code, indexed by code."""
    n_dead_latents: int
    """Latents active on no row."""
    n_dead_rows: int
    """Rows with no active latent (coded by the `dead_rows` rule)."""
    dead_row_fraction: float
    """`n_dead_rows / n_rows`."""
    mse: float
    """Reconstruction error: mean over all elements of (x_hat - x)^2."""
    fvu: float
    """Fraction of variance unexplained: summed squared error over summed squared deviation
    from the mean row."""
    l0: float
    """Mean number of active latents per row."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@torch.no_grad()
def codes(
    sae: SAE[Any],
    acts_PHD: Tensor,
    *,
    dead_rows: DeadRows = "preact",
    batch_rows: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Code per (prompt, head): argmax latent of `sae` on each head's vector -> LongTensor[P, H].

    `sae` takes vectors of the space of `acts_PHD` (`d_in == acts_PHD.shape[-1]`), e.g. the
    discrete SAE or a residual-space SAELens SAE. The work runs on `device` (default: the
    input's; the SAE is copied there if needed, never moved) in batches of `batch_rows` rows;
    the codes are returned on the input's device.
    """
    _check_dead_rows(dead_rows)
    _check_residual_sae(sae, acts_PHD)
    return _run(sae, acts_PHD, dead_rows, batch_rows, device)[0]


@torch.no_grad()
def top_codes(
    sae: SAE[Any],
    acts_PHD: Tensor,
    k: int,
    *,
    batch_rows: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """The `k` latents of largest pre-activation per (prompt, head), strongest first ->
    LongTensor[P, H, k]. `k=1` gives `codes(..., dead_rows="preact")`; a row with fewer than
    `k` active latents is filled with the latents closest to firing."""
    _check_residual_sae(sae, acts_PHD)
    if not 1 <= k <= sae.cfg.d_sae:
        raise ValueError(f"k={k}: take between 1 and the SAE's {sae.cfg.d_sae} latents.")
    return _run(sae, acts_PHD, "preact", batch_rows, device, top_k=k)[0]


@torch.no_grad()
def codes_from_hook_z(
    saes: SAE[Any] | Sequence[SAE[Any]],
    z_PHd: Tensor,
    *,
    dead_rows: DeadRows = "preact",
    batch_rows: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """Codes from per-layer `hook_z` SAEs, one head at a time -> LongTensor[P, n_layers*n_heads].

    `z_PHd` is [n_prompts, n_layers*n_heads, d_head], heads layer-major; `saes[l]` is layer l's
    SAE with `d_in == n_heads * d_head`. Head h of layer l is encoded as the z vector holding its
    z in slot h and zeros elsewhere (the SAE's view of that head acting alone); other heads' z
    would make every head of a layer share one code.
    """
    _check_dead_rows(dead_rows)
    sae_list = [saes] if isinstance(saes, SAE) else list(saes)
    check_acts(z_PHd, "z_PHd", what="d_head")
    _, n_all_heads, d_head = z_PHd.shape
    if not sae_list or any(s.cfg.d_in % d_head for s in sae_list):
        raise ValueError(
            f"each hook_z SAE needs d_in = n_heads * d_head (d_head={d_head} from z_PHd); got "
            f"d_in {[s.cfg.d_in for s in sae_list]}."
        )
    n_heads = sae_list[0].cfg.d_in // d_head
    if (
        any(s.cfg.d_in != n_heads * d_head for s in sae_list)
        or n_all_heads != len(sae_list) * n_heads
    ):
        raise ValueError(
            f"z_PHd has {n_all_heads} heads but {len(sae_list)} SAEs with d_in "
            f"{[s.cfg.d_in for s in sae_list]} imply {n_heads} heads per layer; pass one SAE per "
            f"layer, in layer order, for all heads of z_PHd."
        )
    per_layer = [
        _run(
            sae,
            z_PHd[:, layer * n_heads : (layer + 1) * n_heads],
            dead_rows,
            batch_rows,
            device,
            name="z_PHd",
            head_offset=layer * n_heads,
            expand_heads=True,
        )[0]
        for layer, sae in enumerate(sae_list)
    ]
    return torch.cat(per_layer, dim=1)


@torch.no_grad()
def code_stats(
    sae: SAE[Any],
    acts_PHD: Tensor,
    *,
    dead_rows: DeadRows = "preact",
    batch_rows: int | None = None,
    device: str | torch.device | None = None,
) -> CodeStats:
    """Codes used, dead latents and rows, reconstruction error (MSE, FVU) and L0 of `sae`."""
    return codes_with_stats(
        sae, acts_PHD, dead_rows=dead_rows, batch_rows=batch_rows, device=device
    )[1]


@torch.no_grad()
def codes_with_stats(
    sae: SAE[Any],
    acts_PHD: Tensor,
    *,
    dead_rows: DeadRows = "preact",
    batch_rows: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[Tensor, CodeStats]:
    """`codes` and `code_stats` of one pass over the rows."""
    _check_dead_rows(dead_rows)
    _check_residual_sae(sae, acts_PHD)
    codes_PH, totals = _run(sae, acts_PHD, dead_rows, batch_rows, device, with_stats=True)
    n_rows, d_in = acts_PHD.shape[0] * acts_PHD.shape[1], acts_PHD.shape[2]
    counts = totals["code_counts"]
    # Total variance from float64 sums: sum ||x - mean||^2 = sum ||x||^2 - n ||mean||^2.
    mean = totals["sum_x"] / n_rows
    total_var = float(totals["sum_x2"] - n_rows * mean.pow(2).sum())
    sse = float(totals["sse"])
    return codes_PH, CodeStats(
        n_rows=n_rows,
        n_latents=sae.cfg.d_sae,
        n_codes_used=int((counts > 0).sum()),
        code_counts=counts.tolist(),
        n_dead_latents=int((~totals["fired"]).sum()),
        n_dead_rows=int(totals["dead_rows"]),
        dead_row_fraction=float(totals["dead_rows"]) / n_rows,
        mse=sse / (n_rows * d_in),
        fvu=sse / total_var if total_var > 0 else float("nan"),
        l0=float(totals["active"]) / n_rows,
    )


def _check_dead_rows(dead_rows: str) -> None:
    if dead_rows not in ("preact", "zero"):
        raise ValueError(f"dead_rows={dead_rows!r} must be 'preact' or 'zero'.")


def _check_residual_sae(sae: SAE[Any], acts_PHD: Tensor) -> None:
    if not isinstance(sae, SAE):
        raise TypeError(f"sae must be a sae_lens.SAE, got {type(sae).__name__}.")
    if sae.cfg.reshape_activations == "hook_z":
        raise ValueError(
            "sae is a hook_z SAE (input: concatenated z of a layer's heads); take its codes with "
            "saes.codes_from_hook_z(saes_per_layer, z_PHd)."
        )
    check_acts(acts_PHD, "acts_PHD", last_dim=sae.cfg.d_in)


def _run(
    sae: SAE[Any],
    acts: Tensor,
    dead_rows: DeadRows,
    batch_rows: int | None,
    device: str | torch.device | None,
    *,
    name: str = "acts_PHD",
    head_offset: int = 0,
    expand_heads: bool = False,
    with_stats: bool = False,
    top_k: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Codes [P, H] (on the input's device) and, if asked, summed statistics over all rows;
    with `top_k`, the `top_k` latents of largest pre-activation per row, [P, H, top_k].

    `expand_heads`: rows are one head's z, placed in that head's slot of a zero [H, d] block.
    `name` and `head_offset` locate bad values in error messages.
    """
    n_prompts, n_heads, d = acts.shape
    device = torch.device(device) if device is not None else acts.device
    sae = _on_device(sae, device)
    d_sae = sae.cfg.d_sae
    widest = max(d_sae, sae.cfg.d_in)
    if batch_rows is None:
        batch_rows = max(1, _BATCH_ELEMENTS // widest)
    elif batch_rows < 1:
        raise ValueError(f"batch_rows={batch_rows} must be >= 1.")
    rows = acts.reshape(n_prompts * n_heads, d)
    per_row = () if top_k is None else (top_k,)
    codes_R = torch.empty(rows.shape[0], *per_row, dtype=torch.long, device=device)
    totals = _empty_totals(d_sae, d, device) if with_stats else {}
    for start in range(0, rows.shape[0], batch_rows):
        x = rows[start : start + batch_rows].to(device)
        check_finite(x, name, row_offset=start, n_heads=n_heads, head_offset=head_offset)
        if expand_heads:
            head = torch.arange(start, start + x.shape[0], device=device) % n_heads
            x = _one_head_slots(x, head, n_heads)
            if not sae.hook_z_reshaping_mode:
                x = x.flatten(1)
        post, pre = _encode_with_pre(sae, x)
        if top_k is not None:
            codes_R[start : start + x.shape[0]] = pre.topk(top_k, dim=-1).indices
            continue
        active = post != 0
        alive = active.any(dim=-1)
        code = post.argmax(dim=-1)
        fallback = pre.argmax(dim=-1) if dead_rows == "preact" else torch.zeros_like(code)
        codes_R[start : start + x.shape[0]] = torch.where(alive, code, fallback)
        if with_stats:
            _accumulate(totals, x, post, active, alive, codes_R[start : start + x.shape[0]], sae)
    return codes_R.view(n_prompts, n_heads, *per_row).to(acts.device), totals


def _on_device(sae: SAE[Any], device: torch.device) -> SAE[Any]:
    param = next(sae.parameters())
    if param.device == device or (device.type == param.device.type and device.index is None):
        return sae
    return copy.deepcopy(sae).to(device)


def _one_head_slots(z_Rd: Tensor, head_R: Tensor, n_heads: int) -> Tensor:
    """[R, n_heads, d] zeros with row r's z in slot head_R[r]."""
    out = z_Rd.new_zeros(z_Rd.shape[0], n_heads, z_Rd.shape[1])
    out[torch.arange(z_Rd.shape[0], device=z_Rd.device), head_R] = z_Rd
    return out


def _encode_with_pre(sae: SAE[Any], x: Tensor) -> tuple[Tensor, Tensor]:
    """Post- and pre-activations of any SAELens SAE (pre read at its `hook_sae_acts_pre`)."""
    with _capture(sae.hook_sae_acts_pre) as captured:
        post = sae.encode(x)
    if post.is_sparse:
        post = post.to_dense()
    pre = captured[0]
    return post.flatten(0, -2), pre.flatten(0, -2)


@contextmanager
def _capture(hook_point: torch.nn.Module) -> Iterator[list[Tensor]]:
    captured: list[Tensor] = []
    handle = hook_point.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        yield captured
    finally:
        handle.remove()


def _empty_totals(d_sae: int, d: int, device: torch.device) -> dict[str, Tensor]:
    f64 = {"dtype": torch.float64, "device": device}
    return {
        "code_counts": torch.zeros(d_sae, dtype=torch.long, device=device),
        "fired": torch.zeros(d_sae, dtype=torch.bool, device=device),
        "dead_rows": torch.zeros((), dtype=torch.long, device=device),
        "active": torch.zeros((), dtype=torch.long, device=device),
        "sse": torch.zeros((), **f64),
        "sum_x": torch.zeros(d, **f64),
        "sum_x2": torch.zeros((), **f64),
    }


def _accumulate(
    totals: dict[str, Tensor],
    x: Tensor,
    post: Tensor,
    active: Tensor,
    alive: Tensor,
    code: Tensor,
    sae: SAE[Any],
) -> None:
    x64 = x.double()
    totals["code_counts"] += torch.bincount(code, minlength=sae.cfg.d_sae)
    totals["fired"] |= active.any(dim=0)
    totals["dead_rows"] += (~alive).sum()
    totals["active"] += active.sum()
    totals["sse"] += (sae.decode(post).double() - x64).pow(2).sum()
    totals["sum_x"] += x64.sum(dim=0)
    totals["sum_x2"] += x64.pow(2).sum()
