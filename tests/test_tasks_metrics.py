"""Task metrics on hand-built logits, and filter_correct with fake models."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from circuits import tasks
from circuits.tasks import TaskData, answer_logits, kl_divergence, task_metric


def small_data(answer_ids: list[list[int]], wrong_ids: list[list[int]]) -> TaskData:
    n = len(answer_ids)
    return TaskData(
        task="toy",
        positives=[f"p{i}" for i in range(n)],
        negatives=[f"n{i}" for i in range(n)],
        corrupted=[f"c{i}" for i in range(n)],
        answer_ids=answer_ids,
        wrong_ids=wrong_ids,
        lengths=[1] * n,
    )


def test_logit_diff() -> None:
    # IOI: logit(IO) - logit(S); docstring: logit(answer) - max logit(wrong).
    logits = torch.tensor([[0.0, 3.0, 1.0, 0.5], [2.0, 0.0, 0.0, 5.0]])
    data = small_data([[1], [0]], [[2], [1, 3]])
    values = task_metric("logit_diff", logits, data, reduce=False)
    assert values.tolist() == [2.0, -3.0]
    assert task_metric("logit_diff", logits, data).item() == pytest.approx(-0.5)
    assert tasks.get("ioi").metric(logits, data).item() == pytest.approx(-0.5)


def test_prob_diff() -> None:
    # Greater-than: P(later) - P(not later).
    logits = torch.tensor([[0.1, 0.2, 0.3, 0.4]]).log()
    data = small_data([[2, 3]], [[0, 1]])
    assert task_metric("prob_diff", logits, data).item() == pytest.approx(0.4)
    assert tasks.get("greater-than").metric(logits, data).item() == pytest.approx(0.4)


def test_answer_logprob() -> None:
    logits = torch.tensor([[0.1, 0.2, 0.3, 0.4]]).log()
    data = small_data([[1, 3]], [[]])
    assert task_metric("answer_logprob", logits, data).item() == pytest.approx(math.log(0.6))
    with pytest.raises(ValueError, match="needs wrong answer ids"):
        task_metric("logit_diff", logits, data)


def test_answer_position_with_right_padding() -> None:
    # Row 0 has 3 real tokens, row 1 has 2: the answer logits sit at positions 2 and 1.
    logits = torch.zeros(2, 3, 4)
    logits[0, 2, 1] = 4.0
    logits[1, 1, 0] = 6.0
    logits[1, 2, 0] = -100.0  # a padded position that must be ignored
    mask = torch.tensor([[True, True, True], [True, True, False]])
    data = small_data([[1], [0]], [[0], [1]])
    assert answer_logits(logits, mask).tolist() == [[0, 4, 0, 0], [6, 0, 0, 0]]
    assert task_metric("logit_diff", logits, data, mask=mask, reduce=False).tolist() == [4, 6]
    with pytest.raises(ValueError, match="mask has shape"):
        answer_logits(logits, mask[:, :2])
    with pytest.raises(ValueError, match="2 rows but the 'toy' data has 3"):
        task_metric("logit_diff", logits, small_data([[1]] * 3, [[0]] * 3), mask=mask)


def test_kl_divergence() -> None:
    clean = torch.tensor([[0.5, 0.5]]).log()
    patched = torch.tensor([[0.25, 0.75]]).log()
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_divergence(patched, clean).item() == pytest.approx(expected)
    assert kl_divergence(clean, clean).item() == pytest.approx(0.0)
    full = torch.stack([clean, patched], dim=1)  # [1, 2, vocab]: position 0 is the answer
    mask = torch.tensor([[True, False]])
    assert kl_divergence(full, full[:, :1], mask=mask).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="differ at the answer position"):
        kl_divergence(torch.zeros(1, 3), torch.zeros(1, 2))


class LookupModel:
    """A fake HookedModel: to_tokens -> (tokens, mask) with BOS, logits from a lookup table."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, answers: dict[str, int]) -> None:
        self.tokenizer = tokenizer
        self.by_tokens = {tuple(self.encode(prompt)): answer for prompt, answer in answers.items()}

    def encode(self, prompt: str) -> list[int]:
        return [self.tokenizer.bos_token_id, *self.tokenizer.encode(prompt)]

    def to_tokens(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.encode(p) for p in prompts]
        width = max(len(r) for r in rows)
        tokens = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = True
        return tokens, mask

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*tokens.shape, 50257)
        for i, row in enumerate(tokens.tolist()):
            for length in range(len(row), 0, -1):
                if tuple(row[:length]) in self.by_tokens:
                    logits[i, length - 1, self.by_tokens[tuple(row[:length])]] = 10.0
        return logits


def test_filter_correct(
    gpt2_tokenizer: PreTrainedTokenizerFast, caplog: pytest.LogCaptureFixture
) -> None:
    task = tasks.get("ioi")
    data = task.generate(gpt2_tokenizer, n=12, seed=0)
    # Even prompts: the model says IO (correct); odd prompts: it says S.
    answers = {
        p: (data.answer_ids[i] if i % 2 == 0 else data.wrong_ids[i])[0]
        for i, p in enumerate(data.positives)
    }
    model = LookupModel(gpt2_tokenizer, answers)
    with caplog.at_level(logging.WARNING):
        kept, dropped = task.filter_correct(model, data, batch_size=4)
    assert dropped == 6 and len(kept) == 6
    assert kept.positives == data.positives[0::2]
    assert kept.negatives == data.negatives[0::2]
    assert kept.answer_ids == data.answer_ids[0::2]
    assert "dropped 6 of 12 ioi prompts" in caplog.text

    # A plain callable `tokens -> logits` needs the tokenizer (BOS is prepended from it).
    kept_plain, dropped_plain = task.filter_correct(model.__call__, data, tokenizer=gpt2_tokenizer)
    assert kept_plain == kept and dropped_plain == 6
    with pytest.raises(ValueError, match="pass tokenizer="):
        task.filter_correct(model.__call__, data)


def test_filter_correct_among_vocab(gpt2_tokenizer: PreTrainedTokenizerFast) -> None:
    task = tasks.get("greater-than")
    data = task.generate(gpt2_tokenizer, n=6, seed=0)
    later = [ids[-1] for ids in data.answer_ids]  # "99" is later than every YY
    the = gpt2_tokenizer.encode(" the")[0]
    # Prompts 0-2 predict " the" first and 99 second; prompts 3-5 predict 99 first.
    model = LookupModel(gpt2_tokenizer, {})

    def logits_fn(tokens: torch.Tensor) -> torch.Tensor:
        logits = model(tokens)
        for i, row in enumerate(tokens.tolist()):
            index = data.positives.index(gpt2_tokenizer.decode(row[1:]))
            logits[i, -1, later[index]] = 5.0
            logits[i, -1, the] = 8.0 if index < 3 else 0.0
        return logits

    kept, dropped = task.filter_correct(logits_fn, data, tokenizer=gpt2_tokenizer)
    assert dropped == 0 and len(kept) == 6
    kept, dropped = task.filter_correct(logits_fn, data, tokenizer=gpt2_tokenizer, among="vocab")
    assert dropped == 3 and kept.positives == data.positives[3:]
    with pytest.raises(ValueError, match="among='best'"):
        task.filter_correct(logits_fn, data, tokenizer=gpt2_tokenizer, among="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="answers none"):
        tasks.get("ioi").filter_correct(
            LookupModel(gpt2_tokenizer, {}), tasks.get("ioi").generate(gpt2_tokenizer, n=2)
        )


def test_data_subset_and_validation() -> None:
    data = small_data([[1], [2], [3]], [[0], [0], [0]])
    assert data.subset([2, 0]).answer_ids == [[3], [1]]
    assert data.clean == data.positives
    assert data.seq_len == 1
    with pytest.raises(ValueError, match="keep at least one"):
        data.subset([])
    with pytest.raises(ValueError, match="negatives has 1 entries but there are 2 positives"):
        TaskData("toy", ["a", "b"], ["c"], ["e", "f"], [[1], [1]], [[0], [0]], [1, 1])
    with pytest.raises(ValueError, match="prompt 1 has no answer ids"):
        small_data([[1], []], [[0], [0]])
