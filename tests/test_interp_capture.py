"""capture_heads: shapes, agreement with hook_result, padding invariance, hook hygiene."""

from __future__ import annotations

import pytest
import torch

from interp import HeadCapture, HookedModel, capture_heads, load_model

PROMPTS = [
    "Then, Mary and John went to the store. John gave a drink to",
    "Hi there",
    "The war lasted from the year 1732 to the year 17",
    "def f(self, a, b):",
    "x",
]


@pytest.fixture(scope="module")
def tiny(tiny_gpt2_dir) -> HookedModel:
    return load_model(tiny_gpt2_dir, attn_kernel="sdpa", device="cpu")


def _hook_results(model: HookedModel, prompt: str) -> torch.Tensor:
    """TransformerLens's own per-head results [pos, n_layers*n_heads, d_model], one prompt."""
    tokens, _ = model.to_tokens([prompt])
    stored = {}

    def keep(result, hook):
        stored[hook.layer()] = result[0]

    names = [(f"blocks.{layer}.attn.hook_result", keep) for layer in range(model.n_layers)]
    with torch.no_grad(), model.hooks(names):
        model(tokens)
    return torch.cat([stored[layer] for layer in range(model.n_layers)], dim=1)


def test_shapes_and_labels(tiny: HookedModel) -> None:
    capture = capture_heads(tiny, PROMPTS, progress=False, return_z=True)
    assert isinstance(capture, HeadCapture)
    assert capture.results.shape == (len(PROMPTS), 8, 64)
    assert capture.z.shape == (len(PROMPTS), 8, 16)
    assert capture.labels == tiny.head_labels
    assert capture.results.dtype == torch.float32 and capture.results.device.type == "cpu"


@pytest.mark.parametrize("positions", ["mean", "last", "all"])
def test_matches_hook_result(tiny: HookedModel, positions: str) -> None:
    capture = capture_heads(tiny, PROMPTS, positions=positions, batch_size=2, progress=False)
    for row, prompt in enumerate(PROMPTS):
        expected = _hook_results(tiny, prompt)
        if positions == "mean":
            torch.testing.assert_close(capture.results[row], expected.mean(0), atol=1e-6, rtol=1e-5)
        elif positions == "last":
            torch.testing.assert_close(capture.results[row], expected[-1], atol=1e-6, rtol=1e-5)
        else:
            length = expected.shape[0]
            assert capture.mask[row].sum() == length
            torch.testing.assert_close(
                capture.results[row, :length], expected, atol=1e-6, rtol=1e-5
            )
            assert (capture.results[row, length:] == 0).all()


def test_heads_plus_bias_give_attention_output(tiny: HookedModel) -> None:
    tokens, _ = tiny.to_tokens([PROMPTS[0]])
    stored = {}
    hooks = [
        ("blocks.1.attn.hook_result", lambda r, hook: stored.__setitem__("result", r)),
        ("blocks.1.hook_attn_out", lambda out, hook: stored.__setitem__("out", out)),
    ]
    with torch.no_grad(), tiny.hooks(hooks):
        tiny(tokens)
    summed = stored["result"].sum(dim=2) + tiny.model.blocks[1].attn.b_O
    torch.testing.assert_close(summed, stored["out"], atol=1e-5, rtol=1e-5)
    assert not tiny.model.cfg.use_attn_result  # switched back after the block


def test_padding_invariance(tiny: HookedModel) -> None:
    together = capture_heads(tiny, PROMPTS, batch_size=len(PROMPTS), progress=False)
    for row, prompt in enumerate(PROMPTS):
        alone = capture_heads(tiny, [prompt], progress=False)
        torch.testing.assert_close(together.results[row], alone.results[0], atol=1e-6, rtol=1e-6)


def test_exclude_bos(tiny: HookedModel) -> None:
    with_bos = capture_heads(tiny, PROMPTS[:1], positions="all", progress=False)
    without = capture_heads(tiny, PROMPTS[:1], include_bos=False, progress=False)
    length = int(with_bos.lengths[0])
    torch.testing.assert_close(
        without.results[0], with_bos.results[0, 1:length].mean(0), atol=1e-6, rtol=1e-5
    )


def test_hooks_removed_after_error(tiny: HookedModel, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("forward failed")

    monkeypatch.setattr(tiny, "run", broken)
    with pytest.raises(RuntimeError, match="forward failed"):
        capture_heads(tiny, PROMPTS, progress=False)
    monkeypatch.undo()
    assert not any(hp.fwd_hooks for hp in tiny.model.hook_dict.values())


def test_bad_arguments(tiny: HookedModel) -> None:
    with pytest.raises(ValueError, match="positions"):
        capture_heads(tiny, PROMPTS, positions="first", progress=False)
    with pytest.raises(TypeError, match="load_model"):
        capture_heads(tiny.model, PROMPTS, progress=False)
    with pytest.raises(ValueError, match="include_bos"):
        capture_heads(tiny, [""], include_bos=False, progress=False)


def test_token_input_matches_string_input(tiny: HookedModel) -> None:
    tokens, mask = tiny.to_tokens(PROMPTS)
    from_strings = capture_heads(tiny, PROMPTS, positions="last", progress=False)
    from_tokens = capture_heads(
        tiny, tokens, attention_mask=mask, positions="last", batch_size=2, progress=False
    )
    torch.testing.assert_close(from_tokens.results, from_strings.results, atol=1e-6, rtol=1e-6)
    assert from_tokens.lengths.tolist() == mask.sum(1).tolist()
