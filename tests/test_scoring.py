"""Node and edge scores on hand-built code arrays, against brute-force set counting."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from circuits.scoring import (
    default_top_pairs,
    edge_scores,
    heads_from_edges,
    node_scores,
)
from interp.heads import head_labels

# 4 prompts (2 positive, 2 negative) x 4 heads (2 layers x 2 heads).
CODES = np.array(
    [
        [0, 1, 5, 7],  # positive
        [0, 2, 5, 8],  # positive
        [0, 3, 6, 7],  # negative
        [1, 3, 6, 9],  # negative
    ]
)
POSITIVE = np.array([True, True, False, False])


def brute_node(codes: np.ndarray, positive: np.ndarray) -> list[int]:
    return [len(set(codes[positive, h]) - set(codes[~positive, h])) for h in range(codes.shape[1])]


def brute_edges(codes: np.ndarray, positive: np.ndarray) -> dict[tuple[int, int], int]:
    out = {}
    for h1, h2 in itertools.combinations(range(codes.shape[1]), 2):
        pos = set(zip(codes[positive, h1], codes[positive, h2], strict=True))
        neg = set(zip(codes[~positive, h1], codes[~positive, h2], strict=True))
        out[(h1, h2)] = len(pos - neg)
    return out


def test_node_scores_known_answer() -> None:
    frame = node_scores(CODES, POSITIVE, n_heads_per_layer=2)
    # head 0: pos {0}, neg {0,1} -> 0; head 1: {1,2} vs {3} -> 2;
    # head 2: {5} vs {6} -> 1; head 3: {7,8} vs {7,9} -> 1.
    assert frame["score"].tolist() == [0, 2, 1, 1]
    assert frame["rank"].tolist() == [4, 1, 2, 2]
    assert frame["label"].tolist() == ["L0H0", "L0H1", "L1H0", "L1H1"]
    assert frame["layer"].tolist() == [0, 0, 1, 1]
    assert frame["head"].tolist() == [0, 1, 0, 1]
    assert frame["n_pos_codes"].tolist() == [1, 2, 1, 2]
    assert frame["n_neg_codes"].tolist() == [2, 1, 1, 2]
    assert frame["n_codes_union"].tolist() == [2, 3, 2, 3]


def test_node_scores_normalised_by_union() -> None:
    frame = node_scores(torch.tensor(CODES), torch.tensor(POSITIVE), 2, normalise=True)
    np.testing.assert_allclose(frame["score"], [0, 2 / 3, 1 / 2, 1 / 3])


def test_edge_scores_known_answer() -> None:
    frame = edge_scores(CODES, POSITIVE, n_heads_per_layer=2)
    got = {(r.head1, r.head2): r.score for r in frame.itertuples()}
    # (0,1): pos {(0,1),(0,2)} vs neg {(0,3),(1,3)} -> 2; (2,3): {(5,7),(5,8)} vs
    # {(6,7),(6,9)} -> 2; (0,2): {(0,5)} vs {(0,6),(1,6)} -> 1.
    assert got[(0, 1)] == 2
    assert got[(2, 3)] == 2
    assert got[(0, 2)] == 1
    assert got == brute_edges(CODES, POSITIVE)
    assert list(frame["label1"].astype(str)[:3]) == ["L0H0", "L0H0", "L0H0"]
    assert len(frame) == 6


@pytest.mark.parametrize("chunk_keys", [4, 9, 1 << 20])
def test_edge_scores_chunking_does_not_change_counts(chunk_keys: int) -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, size=(4, 12))
    frame = edge_scores(codes, POSITIVE, 3, chunk_keys=chunk_keys)
    expected = brute_edges(codes, POSITIVE)
    assert {(r.head1, r.head2): r.score for r in frame.itertuples()} == expected


def test_edge_scores_large_codes_use_int64_keys() -> None:
    codes = np.array([[40000, 1], [40001, 2], [40000, 3], [7, 1]])
    frame = edge_scores(codes, POSITIVE, 1)
    assert frame["score"].tolist() == [2.0]


def test_heads_from_edges_counts_appearances_in_top_pairs() -> None:
    edges = pd.DataFrame(
        {
            "head1": [0, 0, 0, 1, 1, 2],
            "head2": [1, 2, 3, 2, 3, 3],
            "score": [5.0, 4.0, 1.0, 1.0, 0.0, 3.0],
        }
    )
    heads = heads_from_edges(edges, 2, 4, top_pairs=2)
    # Top two pairs: (0,1) and (0,2).
    assert heads["score"].tolist() == [2, 1, 1, 0]
    assert heads["rank"].tolist() == [1, 2, 2, 4]
    # Fourth slot: (0,3) and (1,2) tie at score 1 and share it.
    heads = heads_from_edges(edges, 2, 4, top_pairs=4)
    assert heads["score"].tolist() == [2.5, 1.5, 2.5, 1.5]
    assert heads_from_edges(edges, 2, 4, top_pairs=100)["score"].tolist() == [3, 3, 3, 3]


def test_default_top_pairs_matches_seed_code() -> None:
    # Seed code: first 12**2 // 2 = 72 head entries = 36 ordered = 18 unordered pairs.
    assert default_top_pairs(12) == 18
    assert default_top_pairs(1) == 1


def test_head_labels_layer_major() -> None:
    assert head_labels(2, 3) == ["L0H0", "L0H1", "L0H2", "L1H0", "L1H1", "L1H2"]


@pytest.mark.parametrize(
    ("codes", "positive", "match"),
    [
        (np.zeros((4,), dtype=int), POSITIVE, "2-D"),
        (CODES.astype(float), POSITIVE, "integer"),
        (CODES - 1, POSITIVE, "negative"),
        (CODES, POSITIVE[:3], "shape"),
        (CODES, np.ones(4, dtype=bool), "one negative"),
    ],
)
def test_bad_inputs_raise(codes: np.ndarray, positive: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        node_scores(codes, positive, 2)


def test_bad_layout_raises() -> None:
    with pytest.raises(ValueError, match="n_heads_per_layer"):
        node_scores(CODES, POSITIVE, 3)


code_arrays = st.integers(2, 8).flatmap(
    lambda n_prompts: st.tuples(
        arrays(np.int64, (n_prompts, 6), elements=st.integers(0, 4)),
        arrays(np.bool_, (n_prompts,)).filter(lambda p: p.any() and not p.all()),
    )
)


@settings(max_examples=60, deadline=None)
@given(code_arrays, st.randoms(use_true_random=False))
def test_scores_match_brute_force_and_ignore_prompt_order(data, rnd) -> None:
    codes, positive = data
    node = node_scores(codes, positive, 3)
    edges = edge_scores(codes, positive, 3)
    assert node["score"].tolist() == brute_node(codes, positive)
    assert {(r.head1, r.head2): r.score for r in edges.itertuples()} == brute_edges(codes, positive)
    order = list(range(codes.shape[0]))
    rnd.shuffle(order)
    shuffled_node = node_scores(codes[order], positive[order], 3)
    shuffled_edges = edge_scores(codes[order], positive[order], 3)
    assert shuffled_node["score"].tolist() == node["score"].tolist()
    assert shuffled_edges["score"].tolist() == edges["score"].tolist()


@settings(max_examples=60, deadline=None)
@given(code_arrays)
def test_swapping_labels_swaps_positive_and_negative_counts(data) -> None:
    codes, positive = data
    node = node_scores(codes, positive, 3)
    swapped = node_scores(codes, ~positive, 3)
    # Codes exclusive to positives become exclusive to negatives and vice versa.
    assert swapped["n_pos_only"].tolist() == node["n_neg_only"].tolist()
    assert swapped["n_neg_only"].tolist() == node["n_pos_only"].tolist()
    assert swapped["n_codes_union"].tolist() == node["n_codes_union"].tolist()
    edges = edge_scores(codes, positive, 3)
    swapped_edges = edge_scores(codes, ~positive, 3)
    assert swapped_edges["n_pos_only"].tolist() == edges["n_neg_only"].tolist()
    assert swapped_edges["n_neg_only"].tolist() == edges["n_pos_only"].tolist()


def seed_code_edge_head_counts(codes: np.ndarray, positive: np.ndarray, n_per_layer: int):
    """The seed code's edge method, densely: ordered pairs, first n**2 // 2 head entries."""
    n_heads = codes.shape[1]
    unique = np.zeros((n_heads, n_heads))
    for (h1, h2), count in brute_edges(codes, positive).items():
        unique[h1, h2] = unique[h2, h1] = count
    order = np.argsort(unique.flatten())[::-1]
    rows, cols = np.unravel_index(order, unique.shape)
    components = [h for pair in zip(rows, cols, strict=True) for h in pair]
    counts = np.zeros(n_heads)
    for h in components[: n_per_layer**2 // 2]:
        counts[h] += 1
    return counts, np.sort(unique[np.triu_indices(n_heads, 1)])[::-1]


def test_default_edge_head_ranking_matches_seed_code_without_boundary_ties() -> None:
    rng = np.random.default_rng(0)
    n_per_layer = 4  # 8 heads = 2 layers x 4 heads; default cut: 16 // 8 = 2 unordered pairs
    k = default_top_pairs(n_per_layer)
    compared = 0
    for _ in range(200):
        # Few codes, so pair scores spread out instead of saturating at the positives' count.
        codes = rng.integers(0, 4, size=(12, 8))
        positive = rng.permutation(np.arange(12) < 6)
        reference, pair_scores = seed_code_edge_head_counts(codes, positive, n_per_layer)
        if pair_scores[k - 1] == pair_scores[k] or pair_scores[k - 1] == 0:
            continue  # the seed code breaks this tie arbitrarily
        heads = heads_from_edges(edge_scores(codes, positive, n_per_layer), n_per_layer, 8)
        # Each unordered pair appears twice (both orders) in the seed code's list.
        np.testing.assert_array_equal(heads["score"].to_numpy() * 2, reference)
        compared += 1
    assert compared >= 20


@settings(max_examples=30, deadline=None)
@given(arrays(np.int64, (6, 9), elements=st.integers(0, 5)))
def test_exclusive_counts_torch_equals_numpy(keys_RP: np.ndarray) -> None:
    from circuits.scoring import _exclusive_counts

    is_negative_P = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0], dtype=np.int64)
    expected = _exclusive_counts(keys_RP.copy(), is_negative_P)
    got = _exclusive_counts(torch.from_numpy(keys_RP), torch.from_numpy(is_negative_P))
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_array_equal(have.numpy(), want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_scores_on_cuda_equal_cpu() -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 12, size=(40, 12))
    positive = np.arange(40) < 20
    for score in (node_scores, edge_scores):
        cpu = score(codes, positive, 4)
        cuda = score(torch.from_numpy(codes).cuda(), positive, 4)
        pd.testing.assert_frame_equal(cuda, cpu)
