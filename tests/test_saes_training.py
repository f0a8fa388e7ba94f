"""Training the discrete SAE: determinism, parity with SAELens's trainer, dtypes, errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import saes
from saes import SAETrainingConfig, train_discrete_sae

TINY = SAETrainingConfig(n_latents=16, n_epochs=30)


def _acts(n_prompts: int = 20, n_heads: int = 6, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n_prompts, n_heads, d, generator=torch.Generator().manual_seed(seed))


def clustered(
    n_prompts: int = 20, n_heads: int = 16, d: int = 32, n_clusters: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head h emits cluster h % n_clusters's centre (orthogonal, norm 4) plus small noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.linalg.qr(torch.randn(d, n_clusters, generator=g)).Q.T * 4.0
    cluster = torch.arange(n_heads) % n_clusters
    noise = 0.01 * torch.randn(n_prompts, n_heads, d, generator=g)
    return centres[cluster] + noise, cluster


def test_same_seed_same_sae_and_codes_no_global_rng_use() -> None:
    acts = _acts()
    state = torch.get_rng_state()
    a = train_discrete_sae(acts, TINY, seed=5, progress=False)
    b = train_discrete_sae(acts, TINY, seed=5, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name
    assert torch.equal(saes.codes(a, acts), saes.codes(b, acts))
    c = train_discrete_sae(acts, TINY, seed=6, progress=False)
    assert c.cfg.metadata.train_prompt_indices != a.cfg.metadata.train_prompt_indices


def test_metadata_records_config_seed_and_prompts() -> None:
    sae = train_discrete_sae(_acts(), TINY, seed=3, progress=False)
    meta = sae.cfg.metadata
    assert meta.training_config == dataclasses.asdict(TINY)
    assert meta.training_seed == 3
    assert len(meta.train_prompt_indices) == 10 == len(set(meta.train_prompt_indices))
    assert meta.final_loss == pytest.approx(meta.final_mse + TINY.l1_coefficient * meta.final_l1)


def test_training_lowers_the_loss() -> None:
    acts = _acts()
    short = train_discrete_sae(acts, dataclasses.replace(TINY, n_epochs=1), progress=False)
    long = train_discrete_sae(acts, dataclasses.replace(TINY, n_epochs=200), progress=False)
    assert long.cfg.metadata.final_loss < 0.8 * short.cfg.metadata.final_loss


def test_all_prompts_when_n_train_prompts_is_none() -> None:
    config = dataclasses.replace(TINY, n_train_prompts=None)
    sae = train_discrete_sae(_acts(n_prompts=7), config, progress=False)
    assert sae.cfg.metadata.train_prompt_indices == list(range(7))


@pytest.mark.parametrize(
    ("activation", "decoder_norm", "encoder_norm"),
    [("relu", "columns", "none"), ("relu", "seed_rows", "latents"), ("topk", "columns", "none")],
)
def test_fast_loop_matches_sae_lens_trainer(activation, decoder_norm, encoder_norm) -> None:
    """Hand-derived gradients agree with autograd under SAELens's SAETrainer.

    SAETrainer clips gradients to norm 1; the gradients here are far below that.
    """
    acts = _acts()
    config = dataclasses.replace(
        TINY, activation=activation, decoder_norm=decoder_norm, encoder_norm=encoder_norm
    )
    fast = train_discrete_sae(acts, config, seed=2, progress=False)
    lens = train_discrete_sae(acts, dataclasses.replace(config, trainer="sae_lens"), seed=2)
    for name, value in fast.state_dict().items():
        torch.testing.assert_close(value, lens.state_dict()[name], atol=1e-5, rtol=1e-4)
    assert torch.equal(saes.codes(fast, acts), saes.codes(lens, acts))


def test_seed_code_preset() -> None:
    config = SAETrainingConfig.like_seed_code(n_latents=8)
    assert (config.decoder_norm, config.encoder_norm, config.init) == (
        "seed_rows",
        "latents",
        "seed",
    )
    assert config.n_latents == 8
    sae = train_discrete_sae(_acts(), dataclasses.replace(config, n_epochs=5), progress=False)
    assert sae.b_enc.abs().sum() > 0  # the seed initialisation draws a uniform encoder bias


def test_low_precision_inputs_train_in_float32_unless_told() -> None:
    acts = _acts().to(torch.bfloat16)
    sae = train_discrete_sae(acts, TINY, progress=False)
    assert sae.W_enc.dtype == torch.float32 and sae.cfg.dtype == "float32"
    sae64 = train_discrete_sae(acts, dataclasses.replace(TINY, dtype="float64"), progress=False)
    assert sae64.W_enc.dtype == torch.float64
    assert saes.codes(sae, acts).dtype == torch.long


def test_device_follows_input_or_config() -> None:
    sae = train_discrete_sae(_acts(), TINY, progress=False)
    assert sae.W_enc.device.type == "cpu" and sae.cfg.device == "cpu"
    if torch.cuda.is_available():
        gpu = train_discrete_sae(_acts().cuda(), TINY, progress=False)
        assert gpu.W_enc.is_cuda
        cpu = train_discrete_sae(_acts().cuda(), dataclasses.replace(TINY, device="cpu"))
        assert cpu.W_enc.device.type == "cpu"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("activation", ["relu", "topk"])
def test_clusters_get_distinct_codes(seed, activation) -> None:
    """Heads emitting the same cluster share a code; different clusters get different codes.

    ReLU codes can split a cluster when two latents co-fire with near-equal pre-activations,
    and TopK(k=1) can merge clusters onto one latent; fixed seeds keep this test exact.
    """
    acts, cluster = clustered(seed=seed)
    config = SAETrainingConfig(n_latents=16, activation=activation)
    codes = saes.codes(train_discrete_sae(acts, config, seed=seed, progress=False), acts)
    per_cluster = [set(codes[:, cluster == k].flatten().tolist()) for k in range(4)]
    assert all(len(c) == 1 for c in per_cluster), per_cluster
    assert len(set.union(*per_cluster)) == 4, per_cluster


def test_topk_variant_keeps_k_latents() -> None:
    acts = _acts()
    sae = train_discrete_sae(
        acts, dataclasses.replace(TINY, activation="topk", k=2, n_epochs=50), progress=False
    )
    post, pre = sae.encode_with_hidden_pre(acts.flatten(0, 1))
    assert int((post > 0).sum(dim=-1).max()) <= 2
    assert torch.equal(saes.codes(sae, acts).flatten(), pre.argmax(dim=-1))
    assert saes.code_stats(sae, acts).l0 <= 2


@pytest.mark.parametrize(
    ("acts", "config", "error", "message"),
    [
        (torch.randn(4, 16), TINY, ValueError, r"3-D .*unsqueeze\(0\)"),
        (torch.zeros(4, 2, 8, dtype=torch.long), TINY, TypeError, "floating"),
        (torch.randn(4, 2, 8), TINY, ValueError, "n_train_prompts=10 but acts_PHD has only 4"),
        ([[1.0]], TINY, TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_are_named(acts, config, error, message) -> None:
    with pytest.raises(error, match=message):
        train_discrete_sae(acts, config, progress=False)


def test_nan_in_training_prompts_is_located() -> None:
    acts = _acts(n_prompts=30, n_heads=3)
    prompt = train_discrete_sae(
        acts, TINY, seed=4, progress=False
    ).cfg.metadata.train_prompt_indices[6]
    acts[prompt, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=rf"NaN or inf .*prompt {prompt}, head 2"):
        train_discrete_sae(acts, TINY, seed=4, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_latents": 0}, "n_latents=0"),
        ({"n_train_prompts": 0}, "n_train_prompts=0"),
        ({"lr": 0.0}, "lr=0.0"),
        ({"trainer": "keras"}, "trainer='keras'"),
        ({"init": "xavier"}, "init='xavier'"),
        ({"dtype": "int32"}, "dtype='int32'"),
        ({"activation": "topk", "k": 300}, "k=300"),
    ],
)
def test_training_config_rejects_bad_values(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        SAETrainingConfig(**kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("activation", "decoder_norm", "encoder_norm"),
    [("relu", "columns", "none"), ("relu", "seed_rows", "latents"), ("topk", "columns", "none")],
)
def test_cuda_graph_training_matches_cpu(activation, decoder_norm, encoder_norm) -> None:
    """The CUDA-graph loop (warm-up steps, then replays) trains like the eager CPU loop."""
    acts = _acts()
    config = dataclasses.replace(
        TINY, activation=activation, decoder_norm=decoder_norm, encoder_norm=encoder_norm
    )
    cpu = train_discrete_sae(acts, config, seed=3, progress=False)
    gpu = train_discrete_sae(acts.cuda(), config, seed=3, progress=False)
    for name, value in cpu.state_dict().items():
        torch.testing.assert_close(gpu.state_dict()[name].cpu(), value, atol=1e-5, rtol=1e-4)
    assert torch.equal(saes.codes(gpu, acts.cuda()).cpu(), saes.codes(cpu, acts))


def test_divergence_is_an_error_that_says_what_to_do() -> None:
    # Activations of order 1e19 overflow float32's squared error: the loss ends at inf.
    with pytest.raises(saes.TrainingDivergedError, match=r"diverged .* RMS 1\.\d+e\+19.*lr="):
        train_discrete_sae(_acts() * 1e19, TINY, progress=False)
    assert train_discrete_sae(_acts(), TINY, progress=False).cfg.metadata.final_mse < 1.0


def test_small_cpu_work_runs_on_one_thread_and_restores_the_setting(monkeypatch) -> None:
    seen = []
    fit = saes.training._fit_fast

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return fit(*args, **kwargs)

    monkeypatch.setattr(saes.training, "_fit_fast", spy)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_discrete_sae(_acts(), TINY, progress=False)  # 20 x 6 rows of 16: small
        monkeypatch.setattr(saes.training, "SMALL_WORK_ELEMENTS", 0)
        train_discrete_sae(_acts(), TINY, progress=False)  # nothing counts as small
        assert seen == [1, 2]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
