"""Mask presets: one definition behind the dense masks and the flex mask_mods."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from interp import MaskPreset, causal, resolve_masks, sink_window, sliding_window
from interp.masks import LayerMask

presets = st.builds(
    MaskPreset,
    window=st.one_of(st.none(), st.integers(1, 12)),
    n_sink=st.integers(0, 4),
)


def _brute_force(preset: MaskPreset, native: int | None, q: int, k: int) -> bool:
    """The documented rule, one query-key pair at a time."""
    if k > q or (native is not None and q - k >= native):
        return False
    return preset.window is None or q - k < preset.window or k < preset.n_sink


@settings(max_examples=40, deadline=None)
@given(
    head_presets=st.lists(presets, min_size=1, max_size=3),
    native=st.one_of(st.none(), st.integers(1, 8)),
    q_len=st.integers(1, 10),
    extra_keys=st.integers(0, 4),
)
def test_dense_and_mask_mod_follow_the_rule(head_presets, native, q_len, extra_keys) -> None:
    layer = LayerMask(tuple(head_presets), native)
    k_len = q_len + extra_keys
    dense = layer.dense(q_len, k_len, torch.device("cpu"))
    mask_mod = layer.mask_mod(torch.device("cpu"))
    offset = k_len - q_len
    for h, preset in enumerate(head_presets):
        for qi in range(q_len):
            for ki in range(k_len):
                expected = _brute_force(preset, native, qi + offset, ki)
                assert bool(dense[0 if layer.is_uniform else h, qi, ki]) == expected
                got = mask_mod(
                    torch.tensor(0), torch.tensor(h), torch.tensor(qi + offset), torch.tensor(ki)
                )
                assert bool(got) == expected


def test_mask_mod_hides_padded_keys() -> None:
    key_mask = torch.tensor([[True, True, False], [False, True, True]])
    mask_mod = LayerMask((causal(),)).mask_mod(torch.device("cpu"), key_mask)
    t = torch.tensor
    assert not mask_mod(t(0), t(0), t(2), t(2))
    assert mask_mod(t(1), t(0), t(2), t(2))
    assert not mask_mod(t(1), t(0), t(2), t(0))


def test_preset_names_and_validation() -> None:
    assert causal().name == "causal" and causal().is_causal
    assert sliding_window(64).name == "sliding_window(64)"
    assert sink_window(4, 64).name == "sink_window(4, 64)"
    with pytest.raises(ValueError, match="window=0"):
        sliding_window(0)
    with pytest.raises(ValueError, match="n_sink=-1"):
        sink_window(-1, 3)


def test_resolve_precedence() -> None:
    spec = {1: sliding_window(8), (1, 2): sink_window(1, 4), (0, 0): sliding_window(2)}
    layers = resolve_masks(spec, n_layers=2, n_heads=3)
    assert layers[0].presets == (sliding_window(2), causal(), causal())
    assert layers[1].presets == (sliding_window(8), sliding_window(8), sink_window(1, 4))
    assert resolve_masks(None, 2, 3)[1].is_causal
    assert all(
        layer.presets == (sliding_window(5),) * 3
        for layer in resolve_masks(sliding_window(5), 2, 3)
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({2: causal()}, "layer 2 is out of range"),
        ({(0, 3): causal()}, "head 3 is out of range"),
        ({(0, 1, 2): causal()}, "int layer or a"),
        ({0: 5}, "values must be presets"),
        ("causal", "pass a MaskPreset"),
    ],
)
def test_resolve_rejects_bad_specs(spec, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        resolve_masks(spec, n_layers=2, n_heads=3)
