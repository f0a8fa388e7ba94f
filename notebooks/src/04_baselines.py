# %% [markdown]
# # Baselines side by side
#
# Every circuit-discovery method is registered in `circuits.score` / `circuits.run_trials` and
# returns the same per-head score table, so methods compare on one footing:
#
# | method | idea | cost |
# |---|---|---|
# | `sae` | codes of one discrete SAE, positives vs negatives (O'Neill & Bui 2024) | capture + a small SAE |
# | `activation-patching` | patch each head's `z` from the corrupted prompt, measure the metric | one forward per head |
# | `attribution-patching` | first-order (gradient) estimate of activation patching | one forward + backward |
# | `eap` | edge attribution patching between heads (Syed et al. 2023) | one forward + backward |
# | `acdc` | prune edges whose removal changes KL less than tau, swept over tau (Conmy et al. 2023) | a forward per edge per tau |
# | `hisp` | head importance from gradients of a head mask (Michel et al. 2019) | one forward + backward |
#
# All of them run here on the IOI organism, whose circuit is known exactly. The SAE method is
# random (5 seeds); the patching baselines are deterministic given the data (one run).
# Prompts: 100 pairs (fewer than the paper's 250) to keep the notebook quick.

# %%
%matplotlib inline
import time
import warnings
from dataclasses import replace

warnings.filterwarnings("ignore", message="IProgress not found")

import numpy as np
import pandas as pd
from IPython.display import display

import circuits
import circuits.methods
import interp
from circuits import ground_truth, tasks
from circuits.plots import heads_figure, roc_figure
from interp.models import ORGANISMS_DIR

MODEL, TASK, SEED = "organism-ioi", "ioi", 0
notebook_start = time.perf_counter()
model = interp.load_model(MODEL, device="cpu")
truth = ground_truth.load_file(ORGANISMS_DIR / MODEL / "ground_truth.json")
task = tasks.get(TASK)
truth_H = np.array(truth.head_mask(model.n_layers, model.n_heads))

preferred = ["sae", "activation-patching", "attribution-patching", "eap", "acdc", "hisp"]
available = circuits.methods.names()
methods = [m for m in preferred if m in available] + [m for m in available if m not in preferred]
print("registered methods:", ", ".join(available))

# %% [markdown]
# One `prepare` generates the prompts once; each method then runs on the same data
# (`run_trials` evaluates against the ground truth). The SAE method pays for the head capture,
# which it shares with no baseline; the baselines patch the corrupted prompts into the
# positives.

# %%
config = replace(
    circuits.default_config(task),
    capture=circuits.CaptureConfig(n_prompts=200),
    evaluation=circuits.EvaluationConfig(faithfulness=False),
)
context = circuits.prepare(model, task, config, seed=SEED, progress=False)
runs = {}
for method in methods:
    start = time.perf_counter()
    n_trials = 5 if method == "sae" else 1
    trials = circuits.run_trials(context, method, n_trials=n_trials, seed=SEED, ground_truth=truth)
    runs[method] = (trials, (time.perf_counter() - start) / n_trials)


def mean_std(metrics, key):
    values = [m[key] for m in metrics]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


rows = []
for method, (trials, seconds) in runs.items():
    kinds = [("node", trials.node_metrics)]
    if trials.edge_metrics:
        kinds.append(("edge-derived", trials.edge_metrics))
    for kind, metrics in kinds:
        rows.append(
            {
                "method": method if kind == "node" else f"{method} ({kind})",
                "ROC AUC": mean_std(metrics, "roc_auc"),
                "PR AUC": mean_std(metrics, "pr_auc"),
                "precision": mean_std(metrics, "precision"),
                "recall": mean_std(metrics, "recall"),
                "F1 (otsu)": mean_std(metrics, "f1"),
                "heads selected": mean_std(metrics, "n_selected"),
                "seconds / run": round(seconds, 2),
            }
        )
table = pd.DataFrame(rows).set_index("method")
table

# %% [markdown]
# `seconds / run` is wall time per trial, evaluation included. Where it went, per stage (the
# shared prompt generation left out):

# %%
for method, (trials, _) in runs.items():
    stages = trials.summary()["seconds"]
    print(f"{method:>21}:", ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if k != "data"))

# %%
per_trial = {
    method: [r.node["score"].to_numpy() for r in trials.results]
    for method, (trials, _) in runs.items()
}
display(roc_figure(per_trial, truth_H, title=f"{TASK} / {model.name}"))


# %%
def unit(scores):
    spread = scores.max() - scores.min()
    return (scores - scores.min()) / spread if spread > 0 else np.zeros_like(scores)


scaled = {method: unit(np.mean(trials, axis=0)) for method, trials in per_trial.items()}
display(heads_figure(scaled, model.n_layers, model.n_heads, truth_H=truth_H, title="scaled scores"))

# %% [markdown]
# For reference, the node ROC AUCs **published** for IOI on GPT-2 small (not comparable with the
# organism numbers above): SAE 0.868 ± 0.008 (O'Neill & Bui 2024); ACDC 0.880, HISP 0.668,
# subnetwork probing 0.842 (Conmy et al. 2023, Table 2, KL metric).

# %%
print(f"notebook ran in {time.perf_counter() - notebook_start:.1f} s")
