"""The `circuits` console script, in process: files, JSON schema, tables and exit codes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from circuits import tasks
from circuits.cli import build_parser, main
from circuits.config import CaptureConfig
from circuits.options import field_docs

pytestmark = pytest.mark.usefixtures("one_thread")

# Few prompts, epochs and ablations: the point is the plumbing, not the numbers.
FAST = [
    "--n-prompts",
    "16",
    "--sae-n-epochs",
    "10",
    "--sae-n-latents",
    "12",
    "--sae-n-train-prompts",
    "4",
    "--faithfulness-prompts",
    "4",
    "--n-random-circuits",
    "2",
    "--quiet",
]


def save_gpt2_12x12(directory: Path, tokenizer) -> Path:
    """A random GPT-2 with GPT-2 small's head layout (12 x 12) but d_model 48."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=12, n_head=12, n_embd=48, n_positions=128, vocab_size=len(tokenizer)
    )
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def gpt2_12x12_dir(tmp_path_factory: pytest.TempPathFactory, gpt2_tokenizer) -> Path:
    return save_gpt2_12x12(tmp_path_factory.mktemp("gpt2-12x12"), gpt2_tokenizer)


def test_reproduce_writes_results_and_prints_table(gpt2_12x12_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    model = ["--model", str(gpt2_12x12_dir)]
    code = main(
        ["reproduce", "ioi", *model, "--trials", "2", "--seed", "5", *FAST, "--out", str(out)]
    )
    assert code == 0
    folder = out / "ioi" / gpt2_12x12_dir.name
    assert {p.name for p in folder.iterdir()} == {
        "results.json",
        "scores.csv",
        "roc.png",
        "heads.png",
        "faithfulness.png",
    }
    results = json.loads((folder / "results.json").read_text())
    assert results["task"] == "ioi"
    assert results["n_trials"] == 2
    assert results["ground_truth"]["variant"] == "acdc"
    assert len(results["ground_truth"]["heads"]) == 26
    sae = results["methods"]["sae"]
    for kind in ("node", "edge"):
        for metric in ("roc_auc", "pr_auc", "precision", "recall", "f1", "paper_f1_leaky"):
            assert set(sae[kind][metric]) == {"mean", "std"}
            assert 0.0 <= sae[kind][metric]["mean"] <= 1.0
        assert sae[kind]["threshold_rule"] == "otsu"
    assert {"data", "capture", "sae", "codes", "node_scoring", "edge_scoring"} <= set(
        sae["seconds"]
    )
    assert len(results["signal_check"]["p_value"]) == 144
    printed = capsys.readouterr().out
    assert "signal pre-check" in printed
    faith = sae["faithfulness"]
    assert {"found", "ground_truth", "random", "cpr", "cmd", "curves"} <= set(faith)
    assert faith["ablation"] == "counterfactual"
    assert len(faith["curves"]) == 2  # one per trial
    curve = faith["curves"][0]
    assert curve["sizes"] == [int(f * 144) for f in curve["fractions"]]
    assert curve["faithfulness"][-1] == 1.0 and curve["faithfulness"][0] == 0.0
    assert faith["cpr"]["mean"] == pytest.approx(np.mean([c["cpr"] for c in faith["curves"]]))
    config = sae["config"]
    assert config["capture"]["n_prompts"] == 16
    assert config["sae"]["n_epochs"] == 10
    assert config["seed"] == 5
    header, *rows = (folder / "scores.csv").read_text().splitlines()
    assert header.split(",") == [
        "method",
        "kind",
        "seed",
        "head_index",
        "layer",
        "head",
        "label",
        "score",
        "rank",
        "in_ground_truth",
    ]
    assert len(rows) == 2 * 2 * 144  # node and edge-derived, two trials
    assert "roc_auc" in printed
    assert "seconds per stage" in printed
    assert not list(folder.glob(".*"))  # no temporary files left behind


ALL_METHODS = "sae,activation-patching,attribution-patching,eap,acdc,hisp"


def write_user_task(path: Path) -> Path:
    """A 4-pair IOI-like task file with a two-head ground truth for a 2 x 4-head model."""
    names = ["Mary", "John", "Paul", "Anna", "Tom"]
    positives, negatives, answers = [], [], []
    for i in range(4):
        a, b, c = names[i], names[i + 1], names[(i + 2) % 5]
        positives.append(f"When {a} and {b} went to the shop, {b} gave a drink to")
        negatives.append(f"When {a} and {c} went to the shop, {b} gave a drink to")
        answers.append(f" {a}")
    task = {
        "positives": positives,
        "negatives": negatives,
        "answers": answers,
        "ground_truth_heads": ["L0H1", "L1H3"],
    }
    path.write_text(json.dumps(task))
    return path


def test_score_user_task_file(tiny_gpt2_dir, tmp_path, capsys) -> None:
    task_file = write_user_task(tmp_path / "mytask.json")
    out = tmp_path / "out"
    task = ["--task", str(task_file), "--model", str(tiny_gpt2_dir)]
    code = main(["score", *task, "--out", str(out), *FAST[2:], "--n-prompts", "8"])
    assert code == 0
    results = json.loads((out / "mytask" / tiny_gpt2_dir.name / "results.json").read_text())
    assert results["ground_truth"]["heads"] == ["L0H1", "L1H3"]
    assert results["methods"]["sae"]["config"]["n_positives"] == 4
    assert "mytask" in capsys.readouterr().out


def test_every_method_end_to_end(tiny_gpt2_dir, tmp_path, capsys) -> None:
    task_file = write_user_task(tmp_path / "mytask.json")
    out = tmp_path / "out"
    argv = ["score", "--task", str(task_file), "--model", str(tiny_gpt2_dir), "--quiet"]
    argv += ["--out", str(out)]
    options = ["--methods", ALL_METHODS, "--trials", "2", "--n-prompts", "8", *FAST[2:]]
    code = main([*argv, *options])
    assert code == 0
    folder = out / "mytask" / tiny_gpt2_dir.name
    results = json.loads((folder / "results.json").read_text())
    methods = ALL_METHODS.split(",")
    assert list(results["methods"]) == methods
    for method, summary in results["methods"].items():
        for metric in ("roc_auc", "pr_auc", "precision", "recall", "f1"):
            assert set(summary["node"][metric]) == {"mean", "std"}
        assert summary["n_trials"] == (2 if method == "sae" else 1)
        assert summary["seconds"] and all(v >= 0 for v in summary["seconds"].values())
        assert "found" in summary["faithfulness"]
    assert "capture" not in results["methods"]["eap"]["seconds"]  # only the SAE captures
    scores = (folder / "scores.csv").read_text()
    assert all(f"\n{method},node," in scores for method in methods)
    assert {p.name for p in folder.iterdir()} >= {"roc.png", "heads.png"}
    printed = capsys.readouterr().out
    assert all(method in printed for method in methods)


@pytest.mark.parametrize("task", tasks.names())
def test_reproduce_on_the_organisms_with_every_method(task: str, tmp_path, capsys) -> None:
    """Per task, the CI-sized `circuits reproduce all --model organisms --methods ...`."""
    from interp.models import ORGANISMS_DIR

    folder = ORGANISMS_DIR / f"organism-{task}"
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"organism-{task} is not installed in {folder}")
    out = tmp_path / "out"
    options = ["--n-prompts", "40", "--faithfulness-prompts", "20", "--n-random-circuits", "2"]
    argv = ["reproduce", task, "--methods", ALL_METHODS, "--trials", "2", "--quiet"]
    assert main([*argv, *options, "--out", str(out)]) == 0
    results = json.loads((out / task / f"organism-{task}" / "results.json").read_text())
    assert results["ground_truth"]["variant"] == "organism"
    assert list(results["methods"]) == ALL_METHODS.split(",")
    patching = results["methods"]["activation-patching"]["node"]
    assert patching["roc_auc"]["mean"] >= 0.9  # the organisms' circuits are causal
    files = {p.name for p in (out / task / f"organism-{task}").iterdir()}
    assert {"roc.png", "heads.png", "scores.csv"} <= files
    assert f"organism-{task}" in capsys.readouterr().out


def test_tasks_lists_builtin_tasks_with_examples(capsys) -> None:
    assert main(["tasks"]) == 0
    printed = capsys.readouterr().out
    for name in ("ioi:", "greater-than:", "docstring:"):
        assert name in printed
    assert "positive:" in printed and "negative:" in printed


@pytest.mark.parametrize(
    "argv",
    [
        ["reproduce", "nope"],
        ["reproduce", "ioi", "--trials", "0"],
        ["reproduce", "ioi", "--threshold-rule", "median"],
        ["reproduce", "ioi", "--n-prompts", "7"],
        ["reproduce", "ioi", "--model", "no-such-model-anywhere", "--quiet"],
        ["reproduce", "all", "--model", "no-such-model-anywhere", "--quiet"],
        ["reproduce", "ioi", "--methods", "sae,nope", "--quiet"],
        ["reproduce", "ioi", "--device", "nonsense"],
        ["reproduce", "ioi", "--device", "cuda:99"],
        ["score", "--task", "missing.json", "--model", "gpt2"],
    ],
)
def test_bad_inputs_exit_2_with_one_line(argv, capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse rejects before main's body runs
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("circuits")
    assert len(err.splitlines()) == 1


def test_ground_truth_of_another_model_exits_2(tiny_gpt2_dir, tmp_path, capsys) -> None:
    argv = ["reproduce", "ioi", "--model", str(tiny_gpt2_dir), "--out", str(tmp_path), *FAST]
    assert main(argv) == 2
    assert "--ground-truth-file" in capsys.readouterr().err


def test_config_options_come_from_the_dataclasses() -> None:
    parser, destinations = build_parser()
    assert destinations["n_prompts"] == ("capture", "n_prompts")
    assert destinations["sae_l1_coefficient"] == ("sae", "l1_coefficient")
    assert destinations["threshold_rule"] == ("evaluation", "threshold_rule")
    docs = field_docs(CaptureConfig)
    assert docs["n_prompts"].startswith("Prompts scored in total")
    reproduce = next(
        action.choices["reproduce"]
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    l1 = next(a for a in reproduce._actions if "--sae-l1-coefficient" in a.option_strings)
    assert l1.help.endswith("(default: 0.02; docstring: 0.05)")
    args = parser.parse_args(["reproduce", "ioi", "--no-edges", "--edge-top-pairs", "none"])
    assert args.edges is False
    assert args.edge_top_pairs is None


def test_methods_all_and_empty(tmp_path, capsys) -> None:
    assert main(["reproduce", "ioi", "--methods", "", "--out", str(tmp_path)]) == 2
    assert "--methods is empty" in capsys.readouterr().err
    parser, _ = build_parser()
    args = parser.parse_args(["reproduce", "ioi", "--methods", "all"])
    assert args.methods == "all"


def test_task_the_tokenizer_cannot_express_exits_2_before_writing(
    tiny_gpt2_dir, tmp_path, capsys
) -> None:
    task_file = write_user_task(tmp_path / "mytask.json")
    task = json.loads(task_file.read_text())
    task["answers"][0] = " Xylophonistically"  # several GPT-2 tokens: no single answer id
    task_file.write_text(json.dumps(task))
    out = tmp_path / "out"
    argv = ["score", "--task", str(task_file), "--model", str(tiny_gpt2_dir), "--quiet"]
    argv += ["--out", str(out)]
    assert main([*argv, *FAST[2:], "--n-prompts", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Xylophonistically" in err
    assert not out.exists()


def test_tasks_on_a_model_without_their_words_exits_2(capsys) -> None:
    # An organism's word-level tokenizer knows only its own task's words.
    assert main(["tasks", "--model", "organism-ioi", "--n-prompts", "4", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("circuits: error: task greater-than:") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("a-file", "is a file"),
        ("a-file/below", "is a file, not a folder"),
        ("/proc/none", "not a writable"),
    ],
)
def test_unusable_out_exits_2_before_loading(tmp_path, capsys, out, message) -> None:
    (tmp_path / "a-file").write_text("taken")
    argv = ["reproduce", "ioi", "--out", str(tmp_path / out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_sae_device_is_checked_up_front(tmp_path, capsys) -> None:
    argv = ["reproduce", "ioi", "--sae-device", "cuda:99", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("circuits: error: --sae-device:") and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_ctrl_c_prints_one_line_and_the_finished_tasks(tmp_path, capsys, monkeypatch) -> None:
    from circuits import runs

    finished = []

    def interrupt_the_second(*args, **kwargs):
        if finished:
            raise KeyboardInterrupt
        finished.append(True)
        return real(*args, **kwargs)

    real = runs.run_prepared
    monkeypatch.setattr(runs, "run_prepared", interrupt_the_second)
    argv = ["reproduce", "all", "--methods", "norm", "--out", str(tmp_path), *FAST]
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"circuits: interrupted; the finished tasks' files are in {tmp_path}"
    ]
    assert "organism-ioi" in captured.out and "organism-greater-than" not in captured.out
    assert (tmp_path / "ioi" / "organism-ioi" / "results.json").is_file()
    assert not (tmp_path / "greater-than").exists()


def test_score_without_ground_truth_prints_the_top_heads(tiny_gpt2_dir, tmp_path, capsys) -> None:
    task_file = write_user_task(tmp_path / "mytask.json")
    task = json.loads(task_file.read_text())
    del task["ground_truth_heads"]
    task_file.write_text(json.dumps(task))
    argv = ["score", "--task", str(task_file), "--model", str(tiny_gpt2_dir)]
    code = main([*argv, "--methods", "norm", "--out", str(tmp_path / "out"), *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    top = printed.split("top heads")[1].splitlines()[1]
    assert top.startswith("mytask / norm: L")
    assert len(top.split(": ")[1].split(", ")) == 8  # every head of the 2 x 4 model, ranked


def test_a_one_pair_task_works_with_the_default_sae_options(tiny_gpt2_dir, tmp_path) -> None:
    # Two prompts, fewer than the default n_train_prompts (10): the SAE trains on both.
    task_file = write_user_task(tmp_path / "tiny.json")
    task = json.loads(task_file.read_text())
    task = {
        key: value[:1] if isinstance(value, list) and key != "ground_truth_heads" else value
        for key, value in task.items()
    }
    task_file.write_text(json.dumps(task))
    argv = ["score", "--task", str(task_file), "--model", str(tiny_gpt2_dir), "--quiet"]
    options = ["--methods", "sae,sae-calibrated", "--sae-n-epochs", "5", "--no-faithfulness"]
    assert main([*argv, "--out", str(tmp_path / "out"), *options]) == 0
    results = json.loads(
        (tmp_path / "out" / "tiny" / tiny_gpt2_dir.name / "results.json").read_text()
    )
    assert results["methods"]["sae"]["config"]["n_positives"] == 1


def test_help_and_usage_errors_do_not_load_torch() -> None:
    # What keeps `circuits --help` and one-line usage errors instant (benchmarks/bench_cli.py).
    probe = (
        "import sys\n"
        "from circuits.cli import build_parser, main\n"
        "build_parser()\n"
        "assert main(['reproduce', 'ioi', '--n-prompts', '7']) == 2\n"
        "assert main(['reproduce', 'ioi', '--methods', '', '--out', sys.argv[1]]) == 2\n"
        "print(sorted(m for m in ('torch', 'transformer_lens', 'sae_lens') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, tempfile.mkdtemp()], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
