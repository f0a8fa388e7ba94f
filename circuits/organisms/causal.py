"""High-level causal graphs of the organism tasks, each node mapped to one attention head.

A graph computes, from token ids, the value of every node in order and finally the target
next-token distribution at the answer position. Any node can be overridden for some rows
(an interchange intervention): the downstream nodes are then recomputed from the new value,
which is what interchange-intervention training (IIT) asks the low-level model to match when
the mapped head's `hook_z` is taken from the source prompt.

Values are tensors with a batch axis. Positional values (`[batch, seq]`) only make sense
between prompts of equal token length and layout, so training pairs base and source prompts
of the same length.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from circuits.ground_truth.loader import Head
from circuits.tasks import vocab


@dataclass(frozen=True)
class Node:
    """A node of a high-level causal graph and the head that implements it."""

    name: str
    """Short node name (also the key of its value)."""
    head: Head
    """The (layer, head) whose `hook_z` carries this node's value."""
    head_class: str
    """Functional class written to the ground truth (e.g. `name mover`)."""
    description: str
    """What the node computes, in words."""


Overrides = Mapping[str, tuple[torch.Tensor, torch.Tensor]]
"""Node name -> (value for every row, bool mask of the rows whose value is replaced)."""


def _override(value: torch.Tensor, name: str, overrides: Overrides) -> torch.Tensor:
    if name not in overrides:
        return value
    new, rows_B = overrides[name]
    shape = (-1,) + (1,) * (value.ndim - 1)
    return torch.where(rows_B.view(shape), new.to(value.dtype), value)


def _ids(tokenizer_vocab: Mapping[str, int], pieces: list[str], what: str) -> torch.Tensor:
    missing = [p for p in pieces if p not in tokenizer_vocab]
    if missing:
        raise ValueError(
            f"the tokenizer lacks the {what} tokens {missing[:5]}; build it with "
            "circuits.organisms.tokenizer.build_tokenizer for this task."
        )
    return torch.tensor([tokenizer_vocab[p] for p in pieces], dtype=torch.long)


def _distribution(
    token_ids_BS: torch.Tensor, weights_BS: torch.Tensor, d_vocab: int
) -> torch.Tensor:
    """Normalised token distribution `[batch, vocab]` from per-position token weights."""
    dist = torch.zeros(token_ids_BS.shape[0], d_vocab)
    dist.scatter_add_(1, token_ids_BS, weights_BS.float())
    return dist / dist.sum(-1, keepdim=True).clamp(min=1e-9)


def _last_position(mask_BS: torch.Tensor, missing: str) -> torch.Tensor:
    """Index `[batch]` of each row's last True position; raise `missing` when a row has none."""
    if not bool(mask_BS.any(-1).all()):
        raise ValueError(missing)
    positions = torch.arange(mask_BS.shape[1])
    return (mask_BS.long() * (positions[None] + 1)).argmax(-1)


class CausalGraph(ABC):
    """A task's high-level model: nodes mapped to heads, values, target distribution."""

    task: ClassVar[str]
    nodes: ClassVar[tuple[Node, ...]]

    def __init__(self, tokenizer_vocab: Mapping[str, int]) -> None:
        self.d_vocab = max(tokenizer_vocab.values()) + 1

    @property
    def heads(self) -> list[Head]:
        """Circuit heads, in node order."""
        return [node.head for node in self.nodes]

    def node(self, name: str) -> Node:
        """The node called `name`."""
        return next(n for n in self.nodes if n.name == name)

    def run(
        self, tokens_BS: torch.Tensor, ends_B: torch.Tensor, overrides: Overrides | None = None
    ) -> dict[str, torch.Tensor]:
        """Every node's value (after overrides) and `output`, the target `[batch, vocab]`."""
        before_end_BS = torch.arange(tokens_BS.shape[1])[None] < ends_B[:, None]
        return self._values(tokens_BS, before_end_BS, overrides or {})

    @abstractmethod
    def _values(
        self, tokens_BS: torch.Tensor, before_end_BS: torch.Tensor, overrides: Overrides
    ) -> dict[str, torch.Tensor]:
        """`run`, given which positions come before each row's answer position."""


class IOIGraph(CausalGraph):
    """IOI: duplicate-token head -> S-inhibition head -> name mover head.

    - `duplicate` (per position): the token is a name already seen earlier in the prompt.
    - `inhibition` (answer position): the set of tokens at the flagged positions.
    - `mover` (answer position): the output; every earlier name position whose token is not
      inhibited gets equal weight (a name seen twice counts twice).
    """

    task: ClassVar[str] = "ioi"
    nodes: ClassVar[tuple[Node, ...]] = (
        Node("duplicate", (0, 1), "duplicate token", "at S2: the name appeared before"),
        Node("inhibition", (2, 2), "s-inhibition", "at END: the duplicated name (S)"),
        Node("mover", (3, 0), "name mover", "at END: copy the names that are not inhibited"),
    )

    def __init__(self, tokenizer_vocab: Mapping[str, int]) -> None:
        super().__init__(tokenizer_vocab)
        names = [" " + n for n in vocab.IOI_NAMES if " " + n in tokenizer_vocab]
        self.name_ids = _ids(tokenizer_vocab, names, "IOI name")

    def _values(
        self, tokens_BS: torch.Tensor, before_end_BS: torch.Tensor, overrides: Overrides
    ) -> dict[str, torch.Tensor]:
        """Node values and the target distribution (see the class docstring)."""
        batch, seq = tokens_BS.shape
        after_bos_BS = before_end_BS & (torch.arange(seq)[None] > 0)
        is_name_BS = torch.isin(tokens_BS, self.name_ids) & after_bos_BS
        same_BSS = tokens_BS[:, :, None] == tokens_BS[:, None, :]
        earlier_SS = torch.ones(seq, seq, dtype=torch.bool).tril(-1)
        seen_before_BS = (same_BSS & earlier_SS & is_name_BS[:, None, :]).any(-1)
        duplicate_BS = _override(is_name_BS & seen_before_BS, "duplicate", overrides)

        flagged_BS = duplicate_BS & after_bos_BS
        flag_counts_BV = torch.zeros(batch, self.d_vocab).scatter_add_(
            1, tokens_BS, flagged_BS.float()
        )
        inhibited_BV = flag_counts_BV > 0
        inhibited_BV = _override(inhibited_BV, "inhibition", overrides)

        candidates_BS = is_name_BS & ~inhibited_BV.gather(1, tokens_BS)
        # No candidate left (cannot happen without interventions on two names): copy all names.
        none_B = ~candidates_BS.any(-1)
        candidates_BS = torch.where(none_B[:, None], is_name_BS, candidates_BS)
        mover_BV = _override(
            _distribution(tokens_BS, candidates_BS, self.d_vocab), "mover", overrides
        )
        return {
            "duplicate": duplicate_BS,
            "inhibition": inhibited_BV,
            "mover": mover_BV,
            "output": mover_BV,
        }


class GreaterThanGraph(CausalGraph):
    """Greater-than: two heads move the digits of YY to the end; MLPs then compare.

    - `tens` (answer position): the tens digit of YY, moved by one head.
    - `units` (answer position): the units digit of YY, moved by another head.
    - output: the two-digit tokens later than `v = 10 * tens + units`, with probability
      decaying geometrically with the distance (`exp(-(t - v - 1) / decay)`), so the next
      years are the likeliest as in GPT-2 (all on "99" when an intervention makes v 99).
      The decay makes both digits matter under the task's probability-difference metric.
    """

    decay: ClassVar[float] = 4.0
    """Years over which the target probability falls by a factor e."""

    task: ClassVar[str] = "greater-than"
    nodes: ClassVar[tuple[Node, ...]] = (
        Node("tens", (1, 1), "year mover (tens digit)", "at END: the tens digit of YY"),
        Node("units", (2, 3), "year mover (units digit)", "at END: the units digit of YY"),
    )

    def __init__(self, tokenizer_vocab: Mapping[str, int]) -> None:
        super().__init__(tokenizer_vocab)
        self.year_ids = _ids(tokenizer_vocab, [f"{y:02d}" for y in range(100)], "two-digit")

    def _values(
        self, tokens_BS: torch.Tensor, before_end_BS: torch.Tensor, overrides: Overrides
    ) -> dict[str, torch.Tensor]:
        """Node values and the target distribution (see the class docstring)."""
        batch = tokens_BS.shape[0]
        is_year_BS = torch.isin(tokens_BS, self.year_ids) & before_end_BS
        yy_pos_B = _last_position(
            is_year_BS, "a greater-than prompt has no 'YY' token before its end."
        )
        yy_token_B = tokens_BS[torch.arange(batch), yy_pos_B]
        yy_B = (yy_token_B[:, None] == self.year_ids[None]).long().argmax(-1)
        tens_B = _override(yy_B // 10, "tens", overrides)
        units_B = _override(yy_B % 10, "units", overrides)
        threshold_B = (10 * tens_B + units_B).clamp(max=98)
        distance_BY = torch.arange(100)[None] - threshold_B[:, None] - 1
        weight_BY = torch.where(distance_BY >= 0, torch.exp(-distance_BY / self.decay), 0.0)
        output_BV = _distribution(self.year_ids.expand(batch, -1), weight_BY, self.d_vocab)
        return {"tens": tens_B, "units": units_B, "output": output_BV}


class DocstringGraph(CausalGraph):
    """Docstring: previous-argument head -> doc-param head -> argument mover head.

    - `previous` (per position): at a def argument (a token after ","), the argument two
      tokens back; -1 elsewhere.
    - `param` (answer position): the name after the last earlier ":param" (m2).
    - `mover` (answer position): the output; the def arguments whose `previous` equals
      `param` (m3), or every def argument when none does.
    """

    task: ClassVar[str] = "docstring"
    nodes: ClassVar[tuple[Node, ...]] = (
        Node("previous", (0, 2), "previous argument", "at each def arg: the arg before it"),
        Node("param", (1, 0), "docstring param", "at END: the last documented arg (m2)"),
        Node("mover", (3, 1), "argument mover", "at END: copy the def arg that follows m2"),
    )

    def __init__(self, tokenizer_vocab: Mapping[str, int]) -> None:
        super().__init__(tokenizer_vocab)
        self.comma_id, self.param_id = _ids(tokenizer_vocab, [",", "param"], "docstring").tolist()

    def _values(
        self, tokens_BS: torch.Tensor, before_end_BS: torch.Tensor, overrides: Overrides
    ) -> dict[str, torch.Tensor]:
        """Node values and the target distribution (see the class docstring)."""
        batch, seq = tokens_BS.shape
        after_comma_BS = torch.zeros(batch, seq, dtype=torch.bool)
        after_comma_BS[:, 2:] = (tokens_BS[:, 1:-1] == self.comma_id) & before_end_BS[:, 2:]
        two_back_BS = torch.full_like(tokens_BS, -1)
        two_back_BS[:, 2:] = tokens_BS[:, :-2]
        previous_BS = _override(torch.where(after_comma_BS, two_back_BS, -1), "previous", overrides)

        is_param_BS = (tokens_BS == self.param_id) & before_end_BS
        last_param_B = _last_position(
            is_param_BS, "a docstring prompt has no ':param' line before its end."
        )
        param_B = _override(
            tokens_BS[torch.arange(batch), (last_param_B + 1).clamp(max=seq - 1)],
            "param",
            overrides,
        )

        has_previous_BS = previous_BS >= 0
        match_BS = has_previous_BS & (previous_BS == param_B[:, None])
        none_B = ~match_BS.any(-1)
        chosen_BS = torch.where(none_B[:, None], has_previous_BS, match_BS)
        mover_BV = _override(_distribution(tokens_BS, chosen_BS, self.d_vocab), "mover", overrides)
        return {"previous": previous_BS, "param": param_B, "mover": mover_BV, "output": mover_BV}


GRAPHS: Mapping[str, type[CausalGraph]] = {
    graph.task: graph for graph in (IOIGraph, GreaterThanGraph, DocstringGraph)
}
"""Causal graph class of each organism task."""
