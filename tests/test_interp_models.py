"""load_model, HookedModel: loading sources, tokenisation, logits parity with HF, hooks."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import interp
from interp import HookedModel, ModelNotAvailableError, load_model

PROMPTS = [
    "Then, Mary and John went to the store. John gave a drink to",
    "Hi",
    "The war lasted from the year 1732 to the year 17",
]


@pytest.fixture(scope="module")
def tiny(tiny_gpt2_dir) -> HookedModel:
    return load_model(tiny_gpt2_dir, attn_kernel="eager", device="cpu")


@pytest.fixture(scope="module")
def hf_model(tiny_gpt2_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()


def test_local_dir_metadata(tiny: HookedModel) -> None:
    assert (tiny.n_layers, tiny.n_heads, tiny.d_model) == (2, 4, 64)
    assert tiny.head_labels[:5] == ["L0H0", "L0H1", "L0H2", "L0H3", "L1H0"]
    assert tiny.device == torch.device("cpu")
    assert tiny.attn_kernel == "eager"
    assert tiny.model.cfg.normalization_type == "LNPre"  # default weight processing ran


def test_to_tokens_right_pads_with_bos(tiny: HookedModel) -> None:
    tokens, mask = tiny.to_tokens(PROMPTS)
    lengths = mask.sum(1)
    assert mask.dtype == torch.bool
    assert (tokens[:, 0] == tiny.tokenizer.bos_token_id).all()
    for row, length in enumerate(lengths.tolist()):
        assert mask[row, :length].all() and not mask[row, length:].any()
    single, _ = tiny.to_tokens("Hi", prepend_bos=False)
    assert single.shape == (1, 1)


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
def test_logits_match_hf(tiny: HookedModel, hf_model, kernel: str) -> None:
    tokens, mask = tiny.to_tokens(PROMPTS)
    tiny.set_attn_kernel(kernel)
    try:
        with torch.no_grad():
            ours = tiny(tokens, mask)
            theirs = hf_model(tokens, attention_mask=mask.long()).logits
    finally:
        tiny.set_attn_kernel("eager")
    # TransformerLens centres the unembedding: logits agree up to a per-position constant.
    ours = ours - ours.mean(-1, keepdim=True)
    theirs = theirs - theirs.mean(-1, keepdim=True)
    torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-4, rtol=0)


def test_unknown_name_is_model_not_available() -> None:
    with pytest.raises(ModelNotAvailableError, match="not a directory"):
        load_model("no-such-model-anywhere")


def test_offline_hub_name_raises_one_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable at import time; mirror it in its constant.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))  # empty cache
    with pytest.raises(ModelNotAvailableError, match=r"gpt2.*--model DIR") as info:
        load_model("gpt2", device="cpu")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert isinstance(info.value, ValueError)


def test_an_unreachable_hub_means_offline_mode_not_retries(monkeypatch, tmp_path) -> None:
    # Without HF_HUB_OFFLINE, a Hub that does not answer the probe turns offline mode on for
    # the load: an uncached model fails at once instead of after ~30 s of retries.
    from huggingface_hub import constants

    import interp.loading

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # empty cache
    monkeypatch.setattr(interp.loading, "_hub_reachable", lambda: False)
    seen = []

    def from_pretrained(*args, **kwargs):
        seen.append(constants.HF_HUB_OFFLINE)
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.")

    monkeypatch.setattr(interp.loading.HookedTransformer, "from_pretrained", from_pretrained)
    with pytest.raises(ModelNotAvailableError, match=r"load the files\. Without Hub access"):
        load_model("gpt2", device="cpu")
    assert seen == [True]
    assert constants.HF_HUB_OFFLINE is False  # restored


def test_missing_organism_is_clear(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("interp.models.ORGANISMS_DIR", tmp_path)
    with pytest.raises(ModelNotAvailableError, match=r"organism-ioi.*not installed"):
        load_model("organism-ioi")


def test_existing_instance_is_wrapped(tiny: HookedModel) -> None:
    wrapped = load_model(tiny.model, attn_kernel="eager")
    assert wrapped.model is tiny.model
    assert wrapped.tokenizer is tiny.tokenizer


def test_hooks_removed_after_exception(tiny: HookedModel) -> None:
    tokens, mask = tiny.to_tokens(PROMPTS)

    def boom(z, hook):
        raise RuntimeError("hook failed")

    with (
        pytest.raises(RuntimeError, match="hook failed"),
        tiny.hooks([("blocks.0.attn.hook_z", boom)]),
    ):
        tiny(tokens, mask)
    assert not any(hp.fwd_hooks for hp in tiny.model.hook_dict.values())
    tiny(tokens, mask)


def test_hooks_reject_unknown_and_silent_pattern_hooks(tiny: HookedModel) -> None:
    with (
        pytest.raises(ValueError, match="does not exist"),
        tiny.hooks([("blocks.9.attn.hook_z", print)]),
    ):
        pass
    tiny.set_attn_kernel("sdpa")
    try:
        with (
            pytest.raises(ValueError, match="only fires under attn_kernel='eager'"),
            tiny.hooks([("blocks.0.attn.hook_pattern", print)]),
        ):
            pass
    finally:
        tiny.set_attn_kernel("eager")


def test_public_api_exports() -> None:
    for name in [
        "load_model",
        "HookedModel",
        "capture_heads",
        "HeadCapture",
        "ModelNotAvailableError",
        "causal",
        "sliding_window",
        "sink_window",
    ]:
        assert hasattr(interp, name)


def test_organism_layout_loads(monkeypatch, tmp_path, gpt2_tokenizer) -> None:
    import json

    from safetensors.torch import save_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    config = {
        "n_layers": 2,
        "d_model": 32,
        "n_ctx": 64,
        "d_head": 8,
        "n_heads": 4,
        "d_vocab": len(gpt2_tokenizer),
        "act_fn": "gelu",
        "attn_only": True,
        "normalization_type": "LN",
        "seed": 0,
    }
    trained = HookedTransformer(HookedTransformerConfig(**config)).eval()
    folder = tmp_path / "organism-ioi"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    save_file(trained.state_dict(), str(folder / "model.safetensors"))
    gpt2_tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "ground_truth.json").write_text("{}")
    monkeypatch.setattr("interp.models.ORGANISMS_DIR", tmp_path)

    organism = load_model("organism-ioi", attn_kernel="sdpa", device="cpu")
    assert organism.name == "organism-ioi" and organism.n_heads == 4
    tokens, mask = organism.to_tokens(PROMPTS)
    assert tokens[0, 0] == gpt2_tokenizer.bos_token_id
    with torch.no_grad():
        ours, theirs = organism(tokens, mask), trained(tokens, attention_mask=mask)
    ours, theirs = ours - ours.mean(-1, keepdim=True), theirs - theirs.mean(-1, keepdim=True)
    torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-4, rtol=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_a_device_this_machine_lacks_is_named() -> None:
    with pytest.raises(ValueError, match=r"device 'cuda': this machine has 0 usable CUDA"):
        load_model("organism-ioi", device="cuda")
    assert interp.check_device("cpu") == "cpu"
