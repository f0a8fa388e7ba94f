"""``circuits`` console script: ``reproduce`` the paper's tasks, ``score`` a user task, list
``tasks``.

Config options are generated from the stage dataclasses of ``circuits.pipeline`` (their field
docstrings are the help text), so the CLI and the Python API cannot drift apart. Every
result file is written atomically (temporary file, then ``os.replace``). Usage errors (unknown
task, bad option value, missing weights) print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import math
import os
import re
import sys
import tempfile
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

if TYPE_CHECKING:
    # Heavy modules load inside functions, so importing circuits.cli itself is cheap.
    import numpy as np
    import pandas as pd

    from circuits.ground_truth import GroundTruth
    from circuits.pipeline import PipelineConfig
    from circuits.tasks import Task
    from interp import HookedModel

TableRows = list[dict[str, str]]

BUILTIN_TASKS = ("ioi", "greater-than", "docstring")
ORGANISMS = "organisms"
EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the user's input, reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage dump; `--help` still shows the full usage.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# --- options from config dataclasses ----------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string literal after it), on one line."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _converter(annotation: Any, option: str) -> tuple[Callable[[str], Any], list[str] | None]:
    """A string -> value parser and the choices (for Literal types) of one field type."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        parse, choices = _converter(inner, option)

        def optional(text: str) -> Any:
            return None if text.lower() == "none" else parse(text)

        return optional, None if choices is None else [*choices, "none"]
    if origin is Literal:
        return str, [str(a) for a in args]
    if annotation in (int, float, str):
        return annotation, None
    raise TypeError(f"option --{option}: field type {annotation!r} has no command-line form.")


def _section_classes() -> dict[str, type]:
    from circuits.pipeline import CaptureConfig, EvaluationConfig, ScoringConfig
    from saes import SAETrainingConfig

    return {
        "capture": CaptureConfig,
        "sae": SAETrainingConfig,
        "scoring": ScoringConfig,
        "evaluation": EvaluationConfig,
    }


# SAE options carry a prefix: their names (lr, k, device, dtype) are too generic on their own.
_PREFIX = {"capture": "", "sae": "sae-", "scoring": "", "evaluation": ""}


def add_config_options(parser: argparse.ArgumentParser) -> dict[str, tuple[str, str]]:
    """Add one option per config field; return dest -> (section, field)."""
    destinations: dict[str, tuple[str, str]] = {}
    taken = {a.dest for a in parser._actions}
    for section, cls in _section_classes().items():
        group = parser.add_argument_group(f"{section} options ({cls.__name__})")
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        for item in fields(cls):
            option = _PREFIX[section] + item.name.replace("_", "-")
            dest = option.replace("-", "_")
            if dest in taken:
                raise RuntimeError(f"config option --{option} clashes with another option.")
            taken.add(dest)
            default = (
                item.default if item.default is not MISSING else item.default_factory()  # type: ignore[misc]
            )
            help_text = f"{docs.get(item.name, '')} (default: {default})".replace("%", "%%")
            annotation = hints[item.name]
            if annotation is bool:
                group.add_argument(
                    f"--{option}",
                    dest=dest,
                    action=argparse.BooleanOptionalAction,
                    default=argparse.SUPPRESS,
                    help=help_text,
                )
            else:
                parse, choices = _converter(annotation, option)
                group.add_argument(
                    f"--{option}",
                    dest=dest,
                    type=parse,
                    choices=None if choices is None else [parse(c) for c in choices],
                    metavar=None if choices is None else "{" + ",".join(choices) + "}",
                    default=argparse.SUPPRESS,
                    help=help_text,
                )
            destinations[dest] = (section, item.name)
    return destinations


def resolve_config(
    task: Task, args: argparse.Namespace, destinations: dict[str, tuple[str, str]]
) -> PipelineConfig:
    """The task's default config with the options given on the command line applied."""
    from circuits.pipeline import default_config

    config = default_config(task)
    overrides: dict[str, dict[str, Any]] = {}
    for dest, (section, name) in destinations.items():
        if hasattr(args, dest):
            overrides.setdefault(section, {})[name] = getattr(args, dest)
    for section, values in overrides.items():
        try:
            config = replace(config, **{section: replace(getattr(config, section), **values)})
        except ValueError as error:
            raise UsageError(str(error)) from error
    return config


# --- files ---------------------------------------------------------------------------------


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def _versions() -> dict[str, str]:
    out = {}
    for package in ("sae-circuits-toolkit", "torch", "transformer_lens", "sae_lens", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


# --- running one task ---------------------------------------------------------------------


def _ground_truth(task: Task, model: HookedModel, args: argparse.Namespace) -> GroundTruth | None:
    """A file -> that file; a model with its own circuit (an organism, a shipped reference
    such as smollm2-135m's) -> that one; else the task's published one (GPT-2)."""
    from circuits import ground_truth as ground_truths

    if getattr(args, "ground_truth_file", None):
        return ground_truths.load_file(args.ground_truth_file)
    variant = getattr(args, "ground_truth", None)
    own = _own_ground_truth(task, model)
    if own is not None:
        if variant is not None:
            raise UsageError(
                f"--ground-truth {variant} is a published circuit of GPT-2 / attn-only-4l; "
                f"{model.name} has its own {task.name} circuit ({own.variant}), used by "
                "default. Drop --ground-truth, or pass --ground-truth-file FILE."
            )
        return own
    try:
        return task.ground_truth(variant)
    except ValueError:
        if args.command == "score":
            return None
        raise


def _own_ground_truth(task: Task, model: HookedModel) -> GroundTruth | None:
    """The organism's ground truth or the shipped reference of this task on this model."""
    from circuits import ground_truth as ground_truths
    from circuits.references import reference_path
    from interp import ORGANISMS as ORGANISM_NAMES
    from interp import ORGANISMS_DIR

    if model.name in ORGANISM_NAMES:
        truth = ground_truths.load_file(ORGANISMS_DIR / model.name / "ground_truth.json")
        return truth if truth.task == task.name else None
    path = reference_path(task.name, model.name)
    return ground_truths.load_file(path) if path.is_file() else None


def _truth_mask(ground_truth: GroundTruth | None, model: HookedModel) -> np.ndarray | None:
    import numpy as np

    if ground_truth is None:
        return None
    try:
        return np.asarray(ground_truth.head_mask(model.n_layers, model.n_heads), dtype=bool)
    except ValueError as error:
        raise UsageError(
            f"{error} The ground truth ({ground_truth.task}/{ground_truth.variant}, for "
            f"{ground_truth.model}) does not fit {model.name}; pass --ground-truth-file FILE."
        ) from error


def run_task(
    task: Task, args: argparse.Namespace, destinations: dict[str, tuple[str, str]]
) -> tuple[tuple[TableRows, TableRows], Path]:
    """Score one task with every method, write its result files and return its table rows."""
    import pandas as pd

    from circuits.pipeline import available_methods, get_method, prepare, run_trials

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if methods == ["all"]:
        methods = available_methods()
    if not methods:
        raise UsageError("--methods is empty; name at least one method, or 'all'.")
    for method in methods:
        try:
            get_method(method)
        except ValueError as error:
            raise UsageError(str(error)) from error
    config = resolve_config(task, args, destinations)
    model_name = f"organism-{task.name}" if args.model == ORGANISMS else args.model
    progress = not args.quiet
    context = prepare(
        model_name,
        task,
        config,
        seed=args.seed,
        device=args.device,
        attn_kernel=args.attn_kernel,
        progress=progress,
    )
    model = context.model
    ground_truth = _ground_truth(task, model, args)
    truth_H = _truth_mask(ground_truth, model)
    from circuits.signal import signal_check

    check = signal_check(*context.head_acts(), seed=args.seed)
    print(f"{task.name} / {model.name}: {check.summary(truth_H)}", flush=True)
    all_trials = {
        method: run_trials(
            context, method, n_trials=args.trials, seed=args.seed, ground_truth=ground_truth
        )
        for method in methods
    }
    out_dir = Path(args.out) / _safe_name(task.name) / _safe_name(model.name)
    results = {
        "task": task.name,
        "model": model.name,
        "model_argument": args.model,
        "seed": args.seed,
        "n_trials": args.trials,
        "device": str(model.device),
        "attn_kernel": model.attn_kernel,
        "ground_truth": None
        if ground_truth is None
        else {
            "task": ground_truth.task,
            "variant": ground_truth.variant,
            "model": ground_truth.model,
            "heads": ground_truth.labels,
            "source": ground_truth.provenance.source,
        },
        "signal_check": check.as_dict(),
        "methods": {method: trials.summary() for method, trials in all_trials.items()},
        "versions": _versions(),
    }
    rows = []
    for method, trials in all_trials.items():
        for result in trials.results:
            for kind, frame in (("node", result.node), ("edge", result.edge_node)):
                if frame is None:
                    continue
                part = frame[["layer", "head", "label", "score", "rank"]].reset_index()
                part.insert(0, "seed", result.seed)
                part.insert(0, "kind", kind)
                part.insert(0, "method", method)
                if truth_H is not None:
                    part["in_ground_truth"] = truth_H
                rows.append(part)
    scores = pd.concat(rows, ignore_index=True)
    text = json.dumps(_jsonable(results), indent=2, allow_nan=False) + "\n"
    _write_atomic(out_dir / "results.json", lambda p: p.write_text(text, encoding="utf-8"))
    _write_atomic(out_dir / "scores.csv", lambda p: scores.to_csv(p, index=False))
    _write_figures(scores, truth_H, model, task.name, out_dir)
    curves = {
        method: trials.faithfulness["curves"]
        for method, trials in all_trials.items()
        if trials.faithfulness is not None
    }
    if curves:
        from circuits.plots import faithfulness_figure

        figure = faithfulness_figure(curves, title=f"{task.name} / {model.name}")
        _write_atomic(out_dir / "faithfulness.png", lambda p: figure.savefig(p, dpi=120))
    return _table_rows(task.name, model.name, all_trials), out_dir


def _write_figures(
    scores: pd.DataFrame,
    truth_H: np.ndarray | None,
    model: HookedModel,
    task_name: str,
    out_dir: Path,
) -> None:
    from circuits.plots import heads_figure, roc_figure

    groups = scores.groupby(["method", "kind"], sort=False)
    title = f"{task_name} / {model.name}"
    mean_scores = {
        f"{method} {kind}": group.groupby("head_index")["score"].mean().to_numpy()
        for (method, kind), group in groups
    }
    figure = heads_figure(mean_scores, model.n_layers, model.n_heads, truth_H=truth_H, title=title)
    _write_atomic(out_dir / "heads.png", lambda p: figure.savefig(p, dpi=120))
    if truth_H is None or truth_H.all() or not truth_H.any():
        return
    per_trial = {
        f"{method} {kind}": [g["score"].to_numpy() for _, g in group.groupby("seed")]
        for (method, kind), group in groups
    }
    figure = roc_figure(per_trial, truth_H, title=title)
    _write_atomic(out_dir / "roc.png", lambda p: figure.savefig(p, dpi=120))


def _cell(summary: dict[str, Any], key: str, n_trials: int) -> str:
    """`mean±std` over trials; a single trial has no spread to show."""
    if key not in summary:
        return "-"
    if n_trials == 1:
        return f"{summary[key]['mean']:.3f}"
    return f"{summary[key]['mean']:.3f}±{summary[key]['std']:.3f}"


_STAGES = (
    "data",
    "capture",
    "sae",
    "codes",
    "node_scoring",
    "edge_scoring",
    "evaluation",
    "faithfulness",
)


def _table_rows(task: str, model: str, all_trials: dict[str, Any]) -> tuple[TableRows, TableRows]:
    """Metric rows (one per method and node/edge) and timing rows (one per method)."""
    metric_rows, timing_rows = [], []
    for method, trials in all_trials.items():
        summary = trials.summary()
        n = summary["n_trials"]
        faith = summary.get("faithfulness")
        for kind in ("node", "edge", "edge_pairs"):
            metrics = summary.get(kind)
            if metrics is None and kind != "node":
                continue
            metrics = metrics or {}
            row = {
                "task": task,
                "model": model,
                "method": method,
                "kind": kind,
                "roc_auc": _cell(metrics, "roc_auc", n),
                "pr_auc": _cell(metrics, "pr_auc", n),
                "precision": _cell(metrics, "precision", n),
                "recall": _cell(metrics, "recall", n),
                "f1": _cell(metrics, "f1", n),
                "rule": metrics.get("threshold_rule", "-"),
                "n_selected": _cell(metrics, "n_selected", n),
                "paper_f1_leaky": _cell(metrics, "paper_f1_leaky", n),
                "cpr": "-",
                "cmd": "-",
                "kept found/gt/random": "-",
            }
            if kind == "node" and faith is not None:
                row["cpr"] = _cell(faith, "cpr", n)
                row["cmd"] = _cell(faith, "cmd", n)
            if kind == "node" and faith is not None and "found" in faith:
                random_kept = f"{faith['random']['kept']['mean']:.2f}" if "random" in faith else "-"
                row["kept found/gt/random"] = (
                    f"{faith['found']['kept']['mean']:.2f}/"
                    f"{faith['ground_truth']['kept']:.2f}/{random_kept}"
                )
            metric_rows.append(row)
        seconds = summary["seconds"]
        timing = {"task": task, "model": model, "method": method}
        timing.update({stage: f"{seconds[stage]:.2f}" for stage in _STAGES if stage in seconds})
        timing.update({k: f"{v:.2f}" for k, v in seconds.items() if k not in _STAGES})
        timing_rows.append(timing)
    return metric_rows, timing_rows


def _print_tables(metric_rows: TableRows, timing_rows: TableRows) -> None:
    import pandas as pd

    print(pd.DataFrame(metric_rows).fillna("-").to_string(index=False))
    print()
    print("seconds per stage (mean over trials; data and capture are shared by the trials)")
    print(pd.DataFrame(timing_rows).fillna("-").to_string(index=False))


# --- subcommands ----------------------------------------------------------------------------


def _cmd_tasks(args: argparse.Namespace) -> int:
    from circuits import tasks

    if args.model is None:
        for name in tasks.names():
            info = tasks.info(name)
            print(f"{info.name}: {info.description} [metric: {info.metric}]")
            print(f"    positive: {info.positive!r} -> {info.answer!r}")
            print(f"    negative: {info.negative!r}")
        return 0
    import pandas as pd

    from interp import load_model

    model = load_model(args.model, device=args.device)
    rows = []
    for name in tasks.names():
        behaviour = tasks.measure(model, tasks.get(name), n=args.n_prompts, seed=args.seed)
        row = behaviour.as_dict()
        row["form"] = row.pop("options").get("form", "-")
        rows.append(row)
    print(f"{model.name}: accuracy and mean metric per task (seed {args.seed})")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


def _cmd_reproduce(args: argparse.Namespace, destinations: dict[str, tuple[str, str]]) -> int:
    from circuits import tasks

    names = BUILTIN_TASKS if args.task == "all" else (args.task,)
    metric_rows, timing_rows = [], []
    for name in names:
        (task_metrics, task_timings), out_dir = run_task(tasks.get(name), args, destinations)
        metric_rows.extend(task_metrics)
        timing_rows.extend(task_timings)
        if not args.quiet:
            print(f"wrote {out_dir}", file=sys.stderr)
    _print_tables(metric_rows, timing_rows)
    return 0


def _cmd_score(args: argparse.Namespace, destinations: dict[str, tuple[str, str]]) -> int:
    from circuits import tasks

    if Path(args.task).is_file():
        task = tasks.from_file(args.task)
    elif args.task in tasks.names():
        task = tasks.get(args.task)
    else:
        raise UsageError(
            f"--task {args.task!r} is neither a task file (.json/.yaml) nor a built-in task "
            f"({', '.join(tasks.names())})."
        )
    (metric_rows, timing_rows), out_dir = run_task(task, args, destinations)
    if not args.quiet:
        print(f"wrote {out_dir}", file=sys.stderr)
    _print_tables(metric_rows, timing_rows)
    return 0


def _add_run_options(parser: argparse.ArgumentParser, *, default_model: str | None) -> None:
    from interp import KERNELS

    parser.add_argument(
        "--model",
        default=default_model,
        required=default_model is None,
        help="'organisms' (each task's shipped organism with its own ground truth), "
        "'smollm2-135m' (the offline real model, with shipped reference circuits), a Hub "
        "name (gpt2, attn-only-4l, owner/repo, ...) or a local Hugging Face checkpoint "
        "directory" + (f" (default: {default_model})" if default_model else ""),
    )
    parser.add_argument(
        "--methods",
        default="sae",
        help="comma-separated scoring methods, or 'all' (every registered method and control; "
        "ACDC is slow on large models); default: sae",
    )
    parser.add_argument(
        "--trials",
        type=_positive_int,
        default=1,
        help="trials per method; deterministic methods (the baselines) run once (default: 1)",
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seed of the data; trial t trains with seed + t (default: 0)",
    )
    parser.add_argument(
        "--device", type=_device, default=None, help="torch device (default: cuda if available)"
    )
    parser.add_argument(
        "--attn-kernel", choices=KERNELS, default="sdpa", help="attention kernel (default: sdpa)"
    )
    parser.add_argument(
        "--ground-truth-file",
        default=None,
        help="ground-truth JSON (schema in circuits/ground_truth/README.md) overriding the default",
    )
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _device(text: str) -> str:
    """A torch device string that exists on this machine (checked before any model loads)."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device; use cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {count} usable CUDA device(s); use --device cpu"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available; use --device cpu")
    return text


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a non-negative integer")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, tuple[str, str]]]:
    """The ``circuits`` parser and the map from option dest to (config section, field)."""
    parser = _Parser(prog="circuits", description="Find circuits with discrete SAE codes.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    reproduce = commands.add_parser(
        "reproduce", help="score the built-in tasks and evaluate against their ground truth"
    )
    reproduce.add_argument("task", choices=[*BUILTIN_TASKS, "all"], help="task, or all three")
    _add_run_options(reproduce, default_model=ORGANISMS)
    reproduce.add_argument(
        "--ground-truth",
        choices=["acdc", "paper"],
        default=None,
        help="published GPT-2 / attn-only-4l circuit to evaluate against (default: the "
        "model's own circuit where one is shipped, organisms and smollm2-135m; else acdc)",
    )
    destinations = add_config_options(reproduce)
    score = commands.add_parser("score", help="score a user task from a JSON/YAML file")
    score.add_argument("--task", required=True, help="task file (.json/.yaml) or built-in name")
    _add_run_options(score, default_model=None)
    add_config_options(score)
    tasks_parser = commands.add_parser(
        "tasks",
        help="list the built-in tasks with example prompts; with --model, how well the model "
        "does each (accuracy, metric on positives and negatives)",
    )
    tasks_parser.add_argument("--model", default=None, help="measure this model on each task")
    tasks_parser.add_argument(
        "--n-prompts", type=_positive_int, default=250, help="prompt pairs (default: 250)"
    )
    tasks_parser.add_argument("--seed", type=_non_negative_int, default=0, help="data seed")
    tasks_parser.add_argument(
        "--device", type=_device, default=None, help="torch device (default: cuda if available)"
    )
    return parser, destinations


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``circuits`` console script; returns the exit code."""
    from interp import ModelNotAvailableError

    parser, destinations = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "tasks":
            return _cmd_tasks(args)
        if args.command == "reproduce":
            return _cmd_reproduce(args, destinations)
        return _cmd_score(args, destinations)
    except (UsageError, ModelNotAvailableError, FileNotFoundError, ValueError) as error:
        message = " ".join(str(error).split())
        print(f"circuits: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
