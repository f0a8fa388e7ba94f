"""Print the README's result tables (Markdown) from the `results.json` files of a run.

    make reproduce && python scripts/readme_tables.py results
    python scripts/readme_tables.py results --save benchmarks/results/readme

One table per model: a row per task and method with node ROC AUC against the reference
(mean ± std over trials; a single trial shows no spread), MIB's CPR and CMD, and seconds
(the method's own stages and the capture it used; not evaluation or faithfulness). The
README's numbers are pasted from this output, so they can be regenerated, not retyped;
`--save` keeps the run's results.json files in the repository, and `tests/test_docs.py`
checks that the README's tables are exactly what this script prints for them.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

TASK_ORDER = ("ioi", "greater-than", "docstring")


def cell(summary: dict[str, Any], n_trials: int) -> str:
    """`0.877` for one trial, `0.877 ± 0.012` for several."""
    if not summary:
        return "-"
    if n_trials > 1:
        return f"{summary['mean']:.3f} ± {summary['std']:.3f}"
    return f"{summary['mean']:.3f}"


def load(results_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every results.json below `results_dir`, grouped by model family (organisms together)."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(results_dir.glob("*/*/results.json")):
        result = json.loads(path.read_text())
        family = "organisms" if result["model"].startswith("organism-") else result["model"]
        by_model[family].append(result)
    for results in by_model.values():
        results.sort(key=lambda r: TASK_ORDER.index(r["task"]) if r["task"] in TASK_ORDER else 9)
    return by_model


def table(results: list[dict[str, Any]]) -> str:
    """One Markdown table: a row per task and method with node ROC AUC against the
    reference, MIB's CPR and CMD, and seconds (the method's own stages plus capture)."""
    header = ["task", "method", "node ROC AUC", "CPR", "CMD", "seconds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        for method, summary in result["methods"].items():
            n_trials = summary.get("n_trials", 1)
            faith = summary.get("faithfulness", {})
            seconds = summary.get("seconds", {})
            shared = ("data", "evaluation", "faithfulness")
            row = [
                result["task"],
                method,
                cell(summary.get("node", {}).get("roc_auc", {}), n_trials),
                cell(faith.get("cpr", {}), n_trials),
                cell(faith.get("cmd", {}), n_trials),
                f"{sum(v for k, v in seconds.items() if k not in shared):.2f}",
            ]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    """Print one table per model found under the results folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="folder written by `circuits reproduce`")
    parser.add_argument(
        "--save", type=Path, default=None, help="also copy every results.json into this folder"
    )
    args = parser.parse_args()
    for model, results in load(args.results).items():
        print(f"### {model}\n\n{table(results)}\n")
    if args.save is not None:
        for path in sorted(args.results.glob("*/*/results.json")):
            target = args.save / path.relative_to(args.results)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


if __name__ == "__main__":
    main()
