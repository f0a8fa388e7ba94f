"""``circuits`` console script: ``reproduce`` the built-in tasks, ``score`` a user task,
list ``tasks``.

A thin layer: parse, check every input (loading the model and generating the task data
check the rest), call ``circuits.runs.run_prepared`` (what ``circuits.run_task`` does after
the data; it writes the result files) and print the tables. Config options come from the
config dataclasses (``circuits.options``). Bad input (unknown task or method, bad option
value, missing weights, a ground truth that does not fit the model, a task the tokenizer
cannot express) prints one line on stderr and exits with code 2 before the long work
starts; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from circuits.options import Destinations, add_config_options, resolve_config

if TYPE_CHECKING:
    from circuits.config import PipelineConfig
    from circuits.runs import TableRows, TaskRun
    from circuits.tasks import Task

ORGANISMS = "organisms"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C, as shells report SIGINT."""


class UsageError(Exception):
    """A problem with the user's input, reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage dump; `--help` still shows the full usage.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _methods(text: str) -> list[str]:
    """The method names of ``--methods`` (``all``: every registered one), checked."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise UsageError("--methods is empty; name at least one method, or 'all'.")
    from circuits import methods

    if names == ["all"]:
        return methods.names()
    unknown = [name for name in names if name not in methods.names()]
    if unknown:
        raise UsageError(
            f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(methods.names())}."
        )
    return names


def _check_inputs(
    tasks: Sequence[Task | str], args: argparse.Namespace, destinations: Destinations
) -> tuple[list[str], dict[str, PipelineConfig]]:
    """Every input that can be checked before a model loads: each task's config (with the
    SAE's device), the output folder, then the methods (naming them loads every method)."""
    configs = {}
    for task in tasks:
        name = task if isinstance(task, str) else task.name
        try:
            configs[name] = resolve_config(task, args, destinations)
        except ValueError as error:
            raise UsageError(str(error)) from error
    for config in configs.values():
        if config.sae.device is not None:
            try:
                _device(config.sae.device)
            except argparse.ArgumentTypeError as error:
                raise UsageError(f"--sae-device: {error}") from error
    _check_out(Path(args.out))
    return _methods(args.methods), configs


def _check_out(out: Path) -> None:
    """The output folder exists or can be made, and takes files (checked by making and
    removing a probe folder, so that nothing is left behind)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder.")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is a file, not a folder.")
    try:
        Path(tempfile.mkdtemp(prefix=".circuits-probe-", dir=existing)).rmdir()
    except OSError as error:
        raise UsageError(f"--out {out} is not a writable folder ({error.strerror}).") from error


def _run(
    task: Task, config: PipelineConfig, methods: list[str], args: argparse.Namespace
) -> TaskRun:
    """Load the model, check the ground truth and the task data, run every method, write
    the task's files."""
    from circuits.pipeline import prepare
    from circuits.runs import resolve_ground_truth, run_prepared
    from interp import load_model

    name = f"organism-{task.name}" if args.model == ORGANISMS else args.model
    model = load_model(name, attn_kernel=args.attn_kernel, device=args.device)
    try:
        ground_truth = resolve_ground_truth(
            task, model, getattr(args, "ground_truth", None), args.ground_truth_file
        )
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from error
    if ground_truth is None and args.command == "reproduce":
        raise UsageError(f"task {task.name!r} has no ground truth for {model.name}.")
    try:
        # Generating the data checks the task against the model's tokenizer.
        context = prepare(model, task, config, seed=args.seed, progress=not args.quiet)
    except ValueError as error:
        raise UsageError(str(error)) from error
    run = run_prepared(
        context, methods, n_trials=args.trials, seed=args.seed, ground_truth=ground_truth
    )
    if args.quiet:
        print(run.signal_line(), flush=True)
    run.info["model_argument"] = args.model
    out_dir = run.write(args.out)
    if not args.quiet:
        print(f"wrote {out_dir}", file=sys.stderr)
    return run


class _Tables:
    """The table rows of the tasks finished so far (printed at the end, or on Ctrl-C)."""

    def __init__(self) -> None:
        self.metric_rows: TableRows = []
        self.timing_rows: TableRows = []
        self.top_heads: list[str] = []

    def add(self, run: TaskRun) -> None:
        metric_rows, timing_rows = run.table_rows()
        self.metric_rows.extend(metric_rows)
        self.timing_rows.extend(timing_rows)
        if run.ground_truth is None:
            # Without a ground truth the metric columns are empty: show the ranking itself.
            for method, heads in run.top_heads().items():
                self.top_heads.append(f"{run.task.name} / {method}: {', '.join(heads)}")

    def print(self) -> None:
        import pandas as pd

        if not self.metric_rows:
            return
        print(pd.DataFrame(self.metric_rows).fillna("-").to_string(index=False))
        print()
        print("seconds per stage (mean over trials; data and capture are shared by the trials)")
        print(pd.DataFrame(self.timing_rows).fillna("-").to_string(index=False))
        if self.top_heads:
            print()
            print("top heads (highest mean score first; no ground truth to evaluate against)")
            print("\n".join(self.top_heads))


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
        try:
            behaviour = tasks.measure(model, tasks.get(name), n=args.n_prompts, seed=args.seed)
        except ValueError as error:  # a tokenizer without the task's words
            raise UsageError(f"task {name}: {error}") from error
        row = behaviour.as_dict()
        row["form"] = row.pop("options").get("form", "-")
        rows.append(row)
    print(f"{model.name}: accuracy and mean metric per task (seed {args.seed})")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


def _cmd_reproduce(args: argparse.Namespace, destinations: Destinations, tables: _Tables) -> int:
    from circuits import tasks

    names = tasks.names() if args.task == "all" else (args.task,)
    methods, configs = _check_inputs(names, args, destinations)
    for name in names:
        tables.add(_run(tasks.get(name), configs[name], methods, args))
    return 0


def _cmd_score(args: argparse.Namespace, destinations: Destinations, tables: _Tables) -> int:
    from circuits import tasks

    if Path(args.task).is_file():
        try:
            task = tasks.from_file(args.task)
        except ValueError as error:
            raise UsageError(str(error)) from error
    elif args.task in tasks.names():
        task = tasks.get(args.task)
    else:
        raise UsageError(
            f"--task {args.task!r} is neither a task file (.json/.yaml) nor a built-in task "
            f"({', '.join(tasks.names())})."
        )
    methods, configs = _check_inputs([task], args, destinations)
    tables.add(_run(task, configs[task.name], methods, args))
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
    from interp.devices import check_device

    try:
        return check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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


def build_parser() -> tuple[argparse.ArgumentParser, Destinations]:
    """The ``circuits`` parser and the map from option dest to (config section, field)."""
    parser = _Parser(prog="circuits", description="Find circuits with discrete SAE codes.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    reproduce = commands.add_parser(
        "reproduce", help="score the built-in tasks and evaluate against their ground truth"
    )
    from circuits import tasks

    reproduce.add_argument("task", choices=[*tasks.names(), "all"], help="task, or all of them")
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


def _silence_library_progress() -> None:
    """--quiet also hides the progress bars of transformers and the Hugging Face Hub."""
    import huggingface_hub.utils
    import transformers.utils.logging

    huggingface_hub.utils.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``circuits`` console script; returns the exit code."""
    parser, destinations = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):
        _silence_library_progress()
    tables = _Tables()
    try:
        if args.command == "tasks":
            return _cmd_tasks(args)
        command = _cmd_reproduce if args.command == "reproduce" else _cmd_score
        code = command(args, destinations, tables)
    except Exception as error:
        if not _is_input_error(error):
            raise
        message = " ".join(str(error).split())
        print(f"circuits: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        done = f"; the finished tasks' files are in {args.out}" if tables.metric_rows else ""
        print(f"circuits: interrupted{done}", file=sys.stderr)
        tables.print()
        return EXIT_INTERRUPTED
    tables.print()
    return code


def _is_input_error(error: Exception) -> bool:
    """A usage error, a model that cannot be loaded, or activations the SAE cannot fit."""
    if isinstance(error, UsageError):
        return True
    # Imported here, not at the top: `--help` and usage errors must not load torch.
    from interp.models import ModelNotAvailableError
    from saes.training import TrainingDivergedError

    return isinstance(error, ModelNotAvailableError | TrainingDivergedError)


if __name__ == "__main__":
    sys.exit(main())
