# %% [markdown]
# # Quickstart: find a circuit with discrete SAE codes
#
# The method of O'Neill & Bui (2024), one step at a time, on a **model organism**: a tiny
# transformer trained by this project so that a *known* set of heads implements the IOI task
# (its ground truth is stored beside its weights). Everything runs offline on a CPU.
#
# 1. load the model and generate task prompts (positives, where the answer can be inferred, and
#    negatives, where it cannot);
# 2. capture every attention head's output, mean-pooled over positions;
# 3. train **one** discrete sparse autoencoder shared by all heads;
# 4. turn each (prompt, head) into an integer **code**: the index of its largest latent;
# 5. score each head by the codes it shows on positives and never on negatives;
# 6. compare the scores with the ground truth (ROC, heatmap, faithfulness).

# %%
%matplotlib inline
import tempfile
import time
import warnings
from pathlib import Path

# tqdm.auto falls back to text bars without ipywidgets; the toolkit's bars are off here anyway.
warnings.filterwarnings("ignore", message="IProgress not found")

import numpy as np
import pandas as pd
import torch
from IPython.display import display

import circuits
import interp
import saes
from circuits import ground_truth, tasks
from circuits.plots import heads_figure, roc_figure
from interp.models import ORGANISMS_DIR

MODEL, TASK, SEED = "organism-ioi", "ioi", 0
notebook_start = time.perf_counter()

# %% [markdown]
# ## 1. Model, ground truth and task prompts
#
# `interp.load_model` accepts a Hub name (`gpt2`), a local Hugging Face checkpoint directory, a
# TransformerLens model, or a shipped organism. An organism's ground truth is a
# `ground_truth.json` next to its weights, in the same schema as the published circuits.

# %%
model = interp.load_model(MODEL, device="cpu")
truth = ground_truth.load_file(ORGANISMS_DIR / MODEL / "ground_truth.json")
print(model)
print("ground-truth heads:", truth.labels)
pd.Series({name: ground_truth.head_labels(heads) for name, heads in truth.head_classes.items()})

# %%
task = tasks.get(TASK)
data = task.generate(model.tokenizer, n=250, seed=SEED)
pd.DataFrame(
    {
        "positive": data.positives[:3],
        "negative": data.negatives[:3],
        "answer": [model.tokenizer.decode(ids) for ids in data.answer_ids[:3]],
    }
)

# %% [markdown]
# Does the model do the task? The IOI metric is the logit difference between the indirect
# object (the answer) and the subject at the last position.

# %%
tokens_BS, mask_BS = model.to_tokens(data.positives)
with torch.no_grad():
    logits = model(tokens_BS, mask_BS)
print(f"{task.metric_name} on the positives: {task.metric(logits, data, mask=mask_BS):.3f}")
_, dropped = task.filter_correct(model, data)
print(f"answered correctly: {len(data) - dropped} of {len(data)}")

# %% [markdown]
# ## 2. Capture every head's output
#
# `capture_heads` hooks `hook_z` only and returns `z_h @ W_O[h]` per head (TransformerLens
# `hook_result`, without `b_O`), mean-pooled over the real tokens: `[n_prompts, n_heads, d_model]`
# with heads flattened layer-major (`L{layer}H{head}`).

# %%
prompts = data.positives + data.negatives
is_positive_P = torch.tensor([True] * len(data) + [False] * len(data))
capture = interp.capture_heads(model, prompts, positions="mean", progress=False)
acts_PHD = capture.results
print(tuple(acts_PHD.shape), capture.labels[:6], "...")

# %% [markdown]
# ## 3. Train one discrete SAE over all heads
#
# The paper's recipe: 200 latents, L1 coefficient 0.02, Adam at 1e-3, 500 full-batch epochs on
# only **10 prompts** (all their heads) drawn from the mixed pool; labels are not used.

# %%
config = saes.SAETrainingConfig()
sae = saes.train_discrete_sae(acts_PHD, config, seed=SEED, progress=False)
stats = saes.code_stats(sae, acts_PHD).to_dict()
pd.Series({k: v for k, v in stats.items() if k != "code_counts"})

# %% [markdown]
# ## 4. Codes
#
# A head's code on a prompt is the argmax over the SAE's latents (a row with no active latent
# takes the argmax of its pre-activations). Below: the codes of the first positive and negative
# prompts, then for a few heads the codes seen on each side.

# %%
codes_PH = saes.codes(sae, acts_PHD)
sample = pd.DataFrame(codes_PH.numpy(), columns=capture.labels)
sample.insert(0, "prompt", np.where(is_positive_P.numpy(), "positive", "negative"))
display(sample.iloc[[0, 1, len(data), len(data) + 1]])

truth_H = np.array(truth.head_mask(model.n_layers, model.n_heads))
examples = [*np.flatnonzero(truth_H)[:2], *np.flatnonzero(~truth_H)[:2]]
rows = []
for h in examples:
    on_pos = set(codes_PH[is_positive_P, h].tolist())
    on_neg = set(codes_PH[~is_positive_P, h].tolist())
    rows.append(
        {
            "head": capture.labels[h],
            "in circuit": bool(truth_H[h]),
            "codes on positives": sorted(on_pos),
            "codes on negatives": sorted(on_neg),
            "positive-only codes": len(on_pos - on_neg),
        }
    )
pd.DataFrame(rows)

# %% [markdown]
# ## 5. Score heads
#
# Node score: the number of codes a head shows on positives and never on negatives. Edge
# score: the number of code *pairs* of two heads that co-occur on some positive and on no
# negative; heads are then ranked by how often they appear among the top pairs.

# %%
node = circuits.node_scores(codes_PH, is_positive_P, model.n_heads)
edges = circuits.edge_scores(codes_PH, is_positive_P, model.n_heads)
edge_node = circuits.heads_from_edges(edges, model.n_heads, codes_PH.shape[1])
node["in circuit"] = truth_H
node.sort_values("rank").head(8)

# %% [markdown]
# ## 6. Compare with the ground truth
#
# `circuits.evaluate` gives ROC AUC and PR AUC, and precision / recall / F1 at a threshold
# chosen **without** the ground truth (Otsu's split of the scores). The paper's "F1" picks its
# threshold with the ground truth; it is reported as `paper_f1_leaky`.

# %%
node_eval = circuits.evaluate(node, truth.heads)
edge_eval = circuits.evaluate(edge_node, truth.heads)
pd.DataFrame({"node": node_eval.as_dict(), "edge": edge_eval.as_dict()})

# %% [markdown]
# The SAE method never looks at the model's output, only at which codes the heads show: a
# circuit head whose mean-pooled output falls on the same codes for positives and negatives
# scores 0 however much the task depends on it (the codes table above shows whether that
# happens). `04_baselines` ranks the same heads with patching methods, which measure the task
# metric directly.

# %%
scores = {"sae node": node["score"].to_numpy(), "sae edge": edge_node["score"].to_numpy()}
title = f"{TASK} / {model.name}"
display(roc_figure({name: [s] for name, s in scores.items()}, truth_H, title=title))
display(heads_figure(scores, model.n_layers, model.n_heads, truth_H=truth_H, title=title))

# %% [markdown]
# **Faithfulness.** Ablate (mean over the corrupted prompts) every head outside a circuit and
# measure the fraction of the task metric that is kept: the found circuit, the ground truth,
# and random circuits of the found circuit's size.

# %%
found_H = node["score"].to_numpy() >= node_eval.threshold
ablator = circuits.CircuitAblator(model, task, data.subset(range(100)), ablation="mean")
circuits_kept = {"found": found_H, "ground truth": truth.heads}
report = circuits.faithfulness_report(ablator, circuits_kept, n_random=5, seed=SEED)
kept = {name: report[name]["kept"] for name in circuits_kept}
kept["random (mean)"] = report["random"]["kept"]["mean"]
pd.Series(kept, name=f"fraction of {report['metric_name']} kept")

# %% [markdown]
# ## The same in one call
#
# `circuits.score` runs the whole pipeline with the paper's defaults (250 + 250 prompts from
# the task generator with `seed`, the same SAE config); same seed, same scores. `result.seconds`
# says where the time went.

# %%
result = circuits.score(model, TASK, seed=SEED, progress=False)
assert np.array_equal(result.node["score"].to_numpy(), node["score"].to_numpy())
print(f"node ROC AUC {circuits.evaluate(result.node, truth.heads).roc_auc:.3f}")
pd.Series(result.seconds, name="seconds").round(3)

# %% [markdown]
# What the CLI (`circuits reproduce ioi`) does for each task is one call too: `run_task` runs
# several methods (and trials) on the same data, evaluates them against the model's ground
# truth and, with `out`, writes `results.json`, `scores.csv` and the figures.

# %%
with tempfile.TemporaryDirectory() as out:
    run = circuits.run_task(model, TASK, ["sae", "norm"], seed=SEED, out=out, progress=False)
    print(sorted(p.name for p in Path(out, TASK, model.name).iterdir()))
pd.DataFrame(run.table_rows()[0])[["method", "kind", "roc_auc", "cpr", "cmd"]]

# %%
print(f"notebook ran in {time.perf_counter() - notebook_start:.1f} s")
