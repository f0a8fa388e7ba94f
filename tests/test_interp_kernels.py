"""Attention kernels: eager, sdpa and flex agree on hooks, z, head results and masks."""

from __future__ import annotations

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

from interp import HookedModel, capture_heads, load_model, sink_window, sliding_window

PROMPTS = [
    "Then, Mary and John went to the store. John gave a drink to",
    "Hi there",
    "The war lasted from the year 1732 to the year 17",
]
MIXED_MASKS = {0: sliding_window(3), (1, 2): sink_window(2, 2), (1, 0): sliding_window(1)}


def _save(model, tokenizer, directory):
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir) -> HookedModel:
    return load_model(tiny_gpt2_dir, attn_kernel="eager", device="cpu")


@pytest.fixture(scope="module")
def neox(tmp_path_factory, gpt2_tokenizer) -> HookedModel:
    torch.manual_seed(1)
    config = GPTNeoXConfig(
        num_hidden_layers=2,
        num_attention_heads=4,
        hidden_size=64,
        intermediate_size=128,
        vocab_size=len(gpt2_tokenizer),
        max_position_embeddings=256,
        rotary_pct=0.5,
    )
    directory = _save(GPTNeoXForCausalLM(config), gpt2_tokenizer, tmp_path_factory.mktemp("neox"))
    return load_model(directory, attn_kernel="eager", device="cpu")


@pytest.fixture(scope="module")
def llama_gqa(tmp_path_factory, gpt2_tokenizer) -> tuple[HookedModel, LlamaForCausalLM]:
    torch.manual_seed(2)
    config = LlamaConfig(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_size=64,
        intermediate_size=128,
        vocab_size=len(gpt2_tokenizer),
        max_position_embeddings=256,
    )
    hf_model = LlamaForCausalLM(config).eval()
    directory = _save(hf_model, gpt2_tokenizer, tmp_path_factory.mktemp("tiny-llama-gqa"))
    return load_model(directory, attn_kernel="eager", device="cpu"), hf_model


def _run_hooks(model: HookedModel, tokens, mask) -> dict[str, torch.Tensor]:
    """Every attention hook that fired, by name."""
    fired: dict[str, torch.Tensor] = {}
    names = [n for n in model.model.hook_dict if ".attn.hook_" in n]
    if model.attn_kernel != "eager":
        names = [n for n in names if not n.endswith(("hook_pattern", "hook_attn_scores"))]
    hooks = [(n, lambda act, hook: fired.__setitem__(hook.name, act.clone())) for n in names]
    with torch.no_grad(), model.hooks(hooks):
        model(tokens, mask)
    return fired


def _assert_kernels_agree(
    model: HookedModel, tokens, mask, masks=None, fused=("sdpa", "flex")
) -> None:
    """Fused kernels reproduce eager's q/k/v/z hooks and logits at real positions."""
    outputs = {}
    for kernel in ("eager", *fused):
        model.set_attn_kernel(kernel, masks)
        with torch.no_grad():
            logits = model(tokens, mask)
        outputs[kernel] = (logits, _run_hooks(model, tokens, mask))
    model.set_attn_kernel("eager")
    eager_logits, eager_hooks = outputs["eager"]
    for kernel in fused:
        logits, hooks = outputs[kernel]
        fused_names = {n for n in eager_hooks if not n.endswith(("pattern", "scores"))}
        assert set(hooks) == fused_names, kernel
        for name, value in hooks.items():
            torch.testing.assert_close(
                value[mask], eager_hooks[name][mask], rtol=1e-5, atol=1e-5, msg=name
            )
        torch.testing.assert_close(logits[mask], eager_logits[mask], rtol=1e-5, atol=1e-4)


def test_kernels_agree_causal(gpt2: HookedModel) -> None:
    tokens, mask = gpt2.to_tokens(PROMPTS)
    _assert_kernels_agree(gpt2, tokens, mask)


def test_kernels_agree_with_mask_presets(gpt2: HookedModel) -> None:
    tokens, mask = gpt2.to_tokens(PROMPTS)
    _assert_kernels_agree(gpt2, tokens, mask, MIXED_MASKS)
    _assert_kernels_agree(gpt2, tokens, mask, sliding_window(4))


def test_kernels_agree_left_padded(gpt2: HookedModel) -> None:
    tokens, mask = gpt2.to_tokens(PROMPTS)
    lengths = mask.sum(1)
    width = tokens.shape[1]
    left_tokens = torch.full_like(tokens, gpt2.tokenizer.pad_token_id)
    left_mask = torch.zeros_like(mask)
    for row, length in enumerate(lengths.tolist()):
        left_tokens[row, width - length :] = tokens[row, :length]
        left_mask[row, width - length :] = True
    _assert_kernels_agree(gpt2, left_tokens, left_mask)


def test_rotary_kernels_fire_rot_hooks(neox: HookedModel) -> None:
    tokens, mask = neox.to_tokens(PROMPTS)
    _assert_kernels_agree(neox, tokens, mask, MIXED_MASKS)
    neox.set_attn_kernel("sdpa")
    assert "blocks.1.attn.hook_rot_q" in _run_hooks(neox, tokens, mask)
    neox.set_attn_kernel("eager")


def test_gqa_kernels_and_capture(llama_gqa) -> None:
    model, hf_model = llama_gqa
    assert model.model.cfg.n_key_value_heads == 2
    tokens, mask = model.to_tokens(PROMPTS)
    _assert_kernels_agree(model, tokens, mask)
    with torch.no_grad():
        ours = model(tokens, mask)
        theirs = hf_model(tokens, attention_mask=mask.long()).logits
    ours, theirs = ours - ours.mean(-1, keepdim=True), theirs - theirs.mean(-1, keepdim=True)
    torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-4, rtol=0)
    capture = capture_heads(model, PROMPTS, progress=False)
    assert capture.results.shape == (3, 8, 64)  # one vector per query head
    heads = [(0, 3), (1, 0), (1, 1)]
    expected = model.attention_pattern(tokens, heads, mask)
    model.set_attn_kernel("sdpa")
    try:
        got = model.attention_pattern(tokens, heads, mask)
    finally:
        model.set_attn_kernel("eager")
    real = (mask[:, None, :, None] & mask[:, None, None, :]).expand_as(got)
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("masks", [None, MIXED_MASKS], ids=["causal", "presets"])
def test_capture_agrees_across_kernels(gpt2: HookedModel, masks) -> None:
    captures = {}
    for kernel in ("eager", "sdpa", "flex"):
        gpt2.set_attn_kernel(kernel, masks)
        captures[kernel] = capture_heads(gpt2, PROMPTS, positions="mean", progress=False)
    gpt2.set_attn_kernel("eager")
    for kernel in ("sdpa", "flex"):
        torch.testing.assert_close(
            captures[kernel].results, captures["eager"].results, rtol=1e-5, atol=1e-6
        )


def test_presets_change_attention_as_defined(gpt2: HookedModel) -> None:
    tokens, mask = gpt2.to_tokens(PROMPTS[:1])
    gpt2.set_attn_kernel("eager", {(0, 1): sink_window(2, 3)})
    try:
        pattern = gpt2.attention_pattern(tokens, [(0, 1), (0, 0)], mask)[0]
    finally:
        gpt2.set_attn_kernel("eager")
    q = torch.arange(pattern.shape[-1])[:, None]
    k = torch.arange(pattern.shape[-1])[None, :]
    allowed = (k <= q) & ((q - k < 3) | (k < 2))
    assert (pattern[0][~allowed] == 0).all() and (pattern[0][allowed] > 0).all()
    assert (pattern[1][k > q] == 0).all() and (pattern[1][k <= q] > 0).all()


@pytest.mark.parametrize("kernel", ["sdpa", "flex"])
def test_attention_pattern_on_demand_matches_eager(gpt2: HookedModel, kernel: str) -> None:
    tokens, mask = gpt2.to_tokens(PROMPTS)
    heads = [(1, 3), (0, 2), (1, 2)]
    gpt2.set_attn_kernel("eager", MIXED_MASKS)
    expected = gpt2.attention_pattern(tokens, heads, mask)
    gpt2.set_attn_kernel(kernel, MIXED_MASKS)
    try:
        got = gpt2.attention_pattern(tokens, heads, mask)
    finally:
        gpt2.set_attn_kernel("eager")
    assert got.shape == (3, 3, tokens.shape[1], tokens.shape[1])
    real = mask[:, None, :, None] & mask[:, None, None, :]
    real = real.expand_as(got)
    torch.testing.assert_close(got[real], expected[real], rtol=1e-5, atol=1e-6)


def test_bad_kernel_and_mask_keys(gpt2: HookedModel) -> None:
    with pytest.raises(ValueError, match="attn_kernel='fast'"):
        gpt2.set_attn_kernel("fast")
    with pytest.raises(ValueError, match="layer 5 is out of range"):
        gpt2.set_attn_kernel("sdpa", {5: sliding_window(2)})
    with pytest.raises(ValueError, match="head 4 is out of range"):
        gpt2.set_attn_kernel("sdpa", {(0, 4): sliding_window(2)})
    assert gpt2.attn_kernel == "eager"


def test_flex_on_cpu_refuses_gradients() -> None:
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=1, d_model=16, n_ctx=8, d_head=4, d_vocab=10, act_fn="relu", attn_only=True
    )
    trainable = load_model(HookedTransformer(cfg), attn_kernel="flex")
    with pytest.raises(RuntimeError, match="no backward pass on CPU"):
        trainable(torch.zeros(1, 4, dtype=torch.long))


def test_shortformer_attn_only_kernels_agree(gpt2_tokenizer) -> None:
    """The architecture of attn-only-4l (docstring task): shortformer positions, no MLPs."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        n_ctx=64,
        d_head=8,
        n_heads=4,
        d_vocab=len(gpt2_tokenizer),
        act_fn="gelu",
        attn_only=True,
        positional_embedding_type="shortformer",
        seed=3,
    )
    model = load_model(HookedTransformer(cfg).requires_grad_(False), attn_kernel="eager")
    model.tokenizer = gpt2_tokenizer
    tokens, mask = model.to_tokens(PROMPTS)
    _assert_kernels_agree(model, tokens, mask, MIXED_MASKS, fused=("sdpa",))


def test_pattern_hooks_reached_past_the_wrapper_warn_under_fused_kernels() -> None:
    # TransformerLens's own run_with_hooks / run_with_cache skip HookedModel.hooks' check.
    import warnings

    from interp import load_model

    model = load_model("organism-ioi", device="cpu", attn_kernel="sdpa")
    tokens_BS, _ = model.to_tokens(["Then, Bradley and Crystal had a long argument."])
    with pytest.warns(UserWarning, match=r"hook_pattern never fires under attn_kernel='sdpa'"):
        model.model.run_with_hooks(
            tokens_BS, fwd_hooks=[("blocks.0.attn.hook_pattern", lambda x, hook: None)]
        )
    model.set_attn_kernel("eager")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, cache = model.model.run_with_cache(tokens_BS)
    assert cache["pattern", 0].shape[1] == model.n_heads
