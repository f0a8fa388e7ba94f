"""Integer codes and code statistics from the discrete SAE and from any SAELens SAE."""

from __future__ import annotations

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

import saes
from saes import DiscreteSAE, DiscreteSAEConfig


def _acts(n_prompts: int = 9, n_heads: int = 5, d: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n_prompts, n_heads, d, generator=torch.Generator().manual_seed(seed))


def _standard(d_in: int, d_sae: int, seed: int = 0, **cfg) -> StandardSAE:
    """A small randomly initialised SAELens standard SAE (biases random too)."""
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, **cfg))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in sae.parameters():
            param.copy_(torch.randn(param.shape, generator=g))
    return sae


def _half_dead_sae() -> DiscreteSAE:
    """Latent j fires only on inputs with x_j > 1, so most random rows are dead."""
    sae = DiscreteSAE(DiscreteSAEConfig(d_in=8, d_sae=8))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(8))
        sae.b_enc.fill_(-1.0)
        sae.W_dec.copy_(torch.eye(8))
        sae.b_dec.zero_()
    return sae


def test_codes_are_argmax_latents() -> None:
    sae, acts = _half_dead_sae(), _acts()
    codes = saes.codes(sae, acts)
    assert codes.shape == (9, 5) and codes.dtype == torch.long
    # Live rows: argmax of the activations; for ReLU that is also the argmax of x here.
    assert torch.equal(codes, acts.argmax(dim=-1))


def test_dead_rows_use_preactivations_or_seed_zero() -> None:
    sae, acts = _half_dead_sae(), _acts()
    dead = (acts <= 1).all(dim=-1)
    assert 0 < int(dead.sum()) < dead.numel()
    preact = saes.codes(sae, acts)
    seed = saes.codes(sae, acts, dead_rows="zero")
    assert torch.equal(preact[dead], acts.argmax(dim=-1)[dead])
    assert bool((seed[dead] == 0).all())
    assert torch.equal(seed[~dead], preact[~dead])
    stats = saes.code_stats(sae, acts)
    assert stats.n_dead_rows == int(dead.sum())
    assert stats.dead_row_fraction == pytest.approx(float(dead.float().mean()))


def test_top_codes_are_the_strongest_latents_in_order() -> None:
    sae, acts = _half_dead_sae(), _acts()
    top = saes.top_codes(sae, acts, 3)
    assert top.shape == (9, 5, 3) and top.dtype == torch.long
    # Pre-activations are x - 1 here: the three largest coordinates, largest first, dead rows
    # included (their latents closest to firing).
    assert torch.equal(top, acts.topk(3, dim=-1).indices)
    assert torch.equal(saes.top_codes(sae, acts, 1)[..., 0], saes.codes(sae, acts))
    assert torch.equal(saes.top_codes(sae, acts, 3, batch_rows=4), top)
    with pytest.raises(ValueError, match="between 1 and"):
        saes.top_codes(sae, acts, 9)


def test_batching_does_not_change_codes_or_stats() -> None:
    sae, acts = _standard(8, 32), _acts(n_prompts=13)
    assert torch.equal(saes.codes(sae, acts, batch_rows=7), saes.codes(sae, acts))
    small = saes.code_stats(sae, acts, batch_rows=7).to_dict()
    full = saes.code_stats(sae, acts).to_dict()
    for key, value in full.items():
        assert small[key] == pytest.approx(value), key


def test_sae_lens_standard_sae_as_code_source() -> None:
    sae, acts = _standard(8, 32), _acts()
    with torch.no_grad():
        post = sae.encode(acts.flatten(0, 1))
        pre = (acts.flatten(0, 1) - sae.b_dec) @ sae.W_enc + sae.b_enc
    expected = torch.where((post > 0).any(-1), post.argmax(-1), pre.argmax(-1)).view(9, 5)
    assert torch.equal(saes.codes(sae, acts), expected)


def test_code_stats_match_direct_computation() -> None:
    sae, acts = _standard(8, 32), _acts()
    stats = saes.code_stats(sae, acts)
    x = acts.flatten(0, 1)
    with torch.no_grad():
        post = sae.encode(x)
        recon = sae.decode(post)
    codes = saes.codes(sae, acts).flatten()
    assert stats.n_rows == 45 and stats.n_latents == 32
    assert sum(stats.code_counts) == 45
    assert stats.n_codes_used == len(set(codes.tolist()))
    assert stats.n_dead_latents == int((~(post > 0).any(0)).sum())
    assert stats.l0 == pytest.approx(float((post > 0).sum(-1).float().mean()))
    assert stats.mse == pytest.approx(float((recon - x).pow(2).mean()), rel=1e-5)
    fvu = (recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert stats.fvu == pytest.approx(float(fvu), rel=1e-5)


def test_hook_z_saes_code_one_head_at_a_time() -> None:
    n_layers, n_heads, d_head = 2, 3, 4
    layer_saes = [_standard(n_heads * d_head, 16, seed=layer) for layer in range(n_layers)]
    z = _acts(n_prompts=5, n_heads=n_layers * n_heads, d=d_head)
    codes = saes.codes_from_hook_z(layer_saes, z)
    assert codes.shape == (5, n_layers * n_heads)
    layer, head = 1, 2
    slot = torch.zeros(5, n_heads, d_head)
    slot[:, head] = z[:, layer * n_heads + head]
    manual = saes.codes(layer_saes[layer], slot.flatten(1).unsqueeze(1))
    assert torch.equal(codes[:, layer * n_heads + head], manual[:, 0])


def test_hook_z_reshaping_saes_give_the_same_codes() -> None:
    flat = _standard(12, 16)
    reshaping = StandardSAE(StandardSAEConfig(d_in=12, d_sae=16, reshape_activations="hook_z"))
    reshaping.load_state_dict(flat.state_dict())
    z = _acts(n_prompts=5, n_heads=3, d=4)
    assert torch.equal(saes.codes_from_hook_z(reshaping, z), saes.codes_from_hook_z(flat, z))
    with pytest.raises(ValueError, match="codes_from_hook_z"):
        saes.codes(reshaping, z)


def test_hook_z_shape_mismatch_is_explained() -> None:
    z = _acts(n_prompts=2, n_heads=5, d=4)
    with pytest.raises(ValueError, match="one SAE per layer"):
        saes.codes_from_hook_z([_standard(12, 8), _standard(12, 8)], z)
    with pytest.raises(ValueError, match="d_in = n_heads \\* d_head"):
        saes.codes_from_hook_z([_standard(10, 8)], z)


@pytest.mark.parametrize(
    ("acts", "error", "message"),
    [
        (torch.randn(5, 8), ValueError, "3-D"),
        (torch.randn(2, 3, 7), ValueError, "d_model=7 but the SAE expects 8"),
        (torch.zeros(2, 3, 8, dtype=torch.int64), TypeError, "floating"),
        (torch.randn(0, 3, 8), ValueError, "no prompts"),
    ],
)
def test_bad_inputs_are_named(acts, error, message) -> None:
    with pytest.raises(error, match=message):
        saes.codes(_half_dead_sae(), acts)


def test_non_finite_input_is_located_in_every_batch() -> None:
    acts = _acts()
    acts[6, 3, 1] = float("inf")
    for batch_rows in (None, 4):
        with pytest.raises(ValueError, match="prompt 6, head 3"):
            saes.codes(_half_dead_sae(), acts, batch_rows=batch_rows)


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="dead_rows='first'"):
        saes.codes(_half_dead_sae(), _acts(), dead_rows="first")
    with pytest.raises(TypeError, match=r"sae_lens\.SAE"):
        saes.codes(torch.nn.Linear(8, 8), _acts())


def test_codes_stay_on_the_input_device() -> None:
    acts = _acts()
    assert saes.codes(_half_dead_sae(), acts, device="cpu").device == acts.device
    if torch.cuda.is_available():
        sae = _half_dead_sae()
        gpu_codes = saes.codes(sae, acts.cuda())
        assert gpu_codes.is_cuda and sae.W_enc.device.type == "cpu"
        assert torch.equal(gpu_codes.cpu(), saes.codes(sae, acts))
