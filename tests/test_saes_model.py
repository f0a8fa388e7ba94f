"""The discrete SAE as a SAELens architecture: config checks, constraints, save/load round trips."""

from __future__ import annotations

import json

import pytest
import torch
from sae_lens import SAE, StandardSAE, StandardSAEConfig

import saes
from saes import DiscreteSAE, DiscreteSAEConfig, SAETrainingConfig, load_discrete_sae


@pytest.fixture(scope="module")
def trained() -> tuple[DiscreteSAE, torch.Tensor]:
    acts = torch.randn(12, 6, 16, generator=torch.Generator().manual_seed(0))
    config = SAETrainingConfig(n_latents=24, n_epochs=40)
    return saes.train_discrete_sae(acts, config, seed=1, progress=False), acts


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype
        assert torch.equal(sa[name], sb[name]), name


def test_round_trip_through_sae_lens_is_bit_exact(trained, tmp_path) -> None:
    sae, acts = trained
    sae.save_model(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"cfg.json", "sae_weights.safetensors"}
    assert json.loads((tmp_path / "cfg.json").read_text())["architecture"] == "discrete"
    loaded = SAE.load_from_disk(tmp_path)
    assert type(loaded) is DiscreteSAE
    _assert_same_weights(sae, loaded)
    assert loaded.cfg.to_dict() == sae.cfg.to_dict()
    assert torch.equal(saes.codes(loaded, acts), saes.codes(sae, acts))


def test_round_trip_through_own_loader_is_bit_exact(trained, tmp_path) -> None:
    sae, acts = trained
    sae.save_model(tmp_path)
    loaded = load_discrete_sae(tmp_path)
    _assert_same_weights(sae, loaded)
    assert loaded.cfg.metadata.train_prompt_indices == sae.cfg.metadata.train_prompt_indices
    assert loaded.cfg.metadata.training_config == sae.cfg.metadata.training_config
    assert torch.equal(saes.codes(loaded, acts), saes.codes(sae, acts))
    assert load_discrete_sae(tmp_path, dtype="float64").W_enc.dtype == torch.float64


def test_own_loader_rejects_other_architectures_and_missing_files(tmp_path) -> None:
    StandardSAE(StandardSAEConfig(d_in=8, d_sae=4)).save_model(tmp_path / "std")
    with pytest.raises(ValueError, match="'standard' SAE"):
        load_discrete_sae(tmp_path / "std")
    with pytest.raises(FileNotFoundError, match=r"cfg\.json"):
        load_discrete_sae(tmp_path / "nothing")


def test_construction_uses_no_global_rng() -> None:
    state = torch.get_rng_state()
    a = DiscreteSAE(DiscreteSAEConfig(d_in=8, d_sae=4))
    b = DiscreteSAE(DiscreteSAEConfig(d_in=8, d_sae=4))
    assert torch.equal(torch.get_rng_state(), state)
    _assert_same_weights(a, b)


@pytest.mark.parametrize(
    ("decoder_norm", "encoder_norm", "unit_axes"),
    [
        ("columns", "none", [("W_dec", 1)]),
        ("seed_rows", "latents", [("W_dec", 0), ("W_enc", 0)]),
    ],
)
def test_norm_constraints_hold_after_training(decoder_norm, encoder_norm, unit_axes) -> None:
    acts = torch.randn(10, 4, 12, generator=torch.Generator().manual_seed(2))
    config = SAETrainingConfig(
        n_latents=8, n_epochs=30, decoder_norm=decoder_norm, encoder_norm=encoder_norm
    )
    sae = saes.train_discrete_sae(acts, config, progress=False)
    for name, dim in unit_axes:
        norms = getattr(sae, name).detach().norm(dim=dim)
        torch.testing.assert_close(norms, torch.ones_like(norms))


def test_unconstrained_decoder_is_left_free() -> None:
    acts = 3 * torch.randn(10, 4, 12, generator=torch.Generator().manual_seed(2))
    sae = saes.train_discrete_sae(
        acts, SAETrainingConfig(n_latents=8, n_epochs=50, decoder_norm="none"), progress=False
    )
    norms = sae.W_dec.detach().norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "gelu"}, "activation='gelu'"),
        ({"decoder_norm": "rows"}, "decoder_norm='rows'"),
        ({"activation": "topk", "k": 9}, "k=9"),
    ],
)
def test_config_rejects_bad_values(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        DiscreteSAEConfig(d_in=8, d_sae=4, **kwargs)


@pytest.mark.parametrize(
    ("damage", "file"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:100]), "sae_weights.safetensors"),
        (lambda path: path.write_text(path.read_text()[:-20]), "cfg.json"),
    ],
)
def test_corrupted_files_are_named(trained, tmp_path, damage, file) -> None:
    sae, _ = trained
    sae.save_model(tmp_path)
    damage(tmp_path / file)
    with pytest.raises(ValueError, match=str(tmp_path / file)):
        load_discrete_sae(tmp_path)
