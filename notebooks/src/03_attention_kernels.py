# %% [markdown]
# # Attention kernels: same hooks under eager, sdpa and flex
#
# `interp` swaps the score-softmax-value step of every attention layer between three kernels
# without changing hook names:
#
# | kernel | what runs | `hook_q/k/v/z`, `hook_result` | `hook_pattern` |
# |---|---|---|---|
# | `eager` | TransformerLens's own attention | yes | yes |
# | `sdpa` | `torch.nn.functional.scaled_dot_product_attention` (flash on GPU) | yes | on demand: `attention_pattern` |
# | `flex` | `torch.nn.attention.flex_attention`, compiled, block masks | yes | on demand: `attention_pattern` |
#
# This notebook checks that `hook_z` agrees across kernels, compares speed and memory on the
# CPU, and then uses per-head **mask presets** to restrict heads to a sliding window:
# restricting the circuit's heads should break the task, restricting the others should not.
#
# On a CPU, flex is forward-only and its first call compiles for a few seconds; its compiled
# kernels bring a second OpenMP pool, so `OMP_WAIT_POLICY=PASSIVE` is set before torch loads.

# %%
%matplotlib inline
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")
# interp wraps HookedTransformer on purpose (docs/interp.md); its 3.x deprecation notice is noise.
warnings.filterwarnings("ignore", message="HookedTransformer is deprecated")

import numpy as np
import pandas as pd
import torch
from IPython.display import display
from torch.profiler import ProfilerActivity, profile
from transformer_lens import HookedTransformer, HookedTransformerConfig

import circuits
import interp
from circuits import ground_truth, tasks
from circuits.plots import heads_figure
from interp.models import ORGANISMS_DIR

MODEL, TASK, SEED = "organism-ioi", "ioi", 0
notebook_start = time.perf_counter()
model = interp.load_model(MODEL, device="cpu", attn_kernel="eager")
truth = ground_truth.load_file(ORGANISMS_DIR / MODEL / "ground_truth.json")
task = tasks.get(TASK)
data = task.generate(model.tokenizer, n=64, seed=SEED)
tokens_BS, mask_BS = model.to_tokens(data.positives)
print(model)
print("prompt tokens:", tuple(tokens_BS.shape), "| circuit:", truth.labels)

# %% [markdown]
# ## hook_z parity
#
# Run the same right-padded batch under each kernel with a hook on every layer's `hook_z`, and
# compare with eager at the real (non-padded) positions. Padded query positions are
# unspecified and may differ between kernels. Flex is run under `torch.no_grad()` (no
# backward on CPU), so everything is.


# %%
def run_with_z(kernel):
    """Logits and every layer's hook_z under one kernel."""
    model.set_attn_kernel(kernel)
    z = {}

    def save(activation, hook):
        z[hook.name] = activation.detach().clone()

    with torch.no_grad(), model.hooks([(lambda name: name.endswith("attn.hook_z"), save)]):
        logits = model(tokens_BS, mask_BS)
    return logits, z


reference_logits, reference_z = run_with_z("eager")
real = mask_BS.bool()
rows = []
for kernel in interp.KERNELS:
    start = time.perf_counter()
    logits, z = run_with_z(kernel)
    rows.append(
        {
            "kernel": kernel,
            "hooks fired": len(z),
            "max |Δ hook_z| (real positions)": max(
                (z[name] - reference_z[name])[real].abs().max().item() for name in reference_z
            ),
            "max |Δ logits|": (logits - reference_logits)[real].abs().max().item(),
            "first call s": time.perf_counter() - start,
        }
    )
pd.DataFrame(rows).set_index("kernel")

# %% [markdown]
# The first flex call includes compilation. Per-head capture, and patterns of chosen heads
# under fused kernels (recomputed from the `q` and `k` the kernel consumed, only for the heads
# asked), agree as well:

# %%
heads = sorted(truth.heads)[:2]
model.set_attn_kernel("eager")
reference_acts = interp.capture_heads(model, data.positives, progress=False).results
reference_pattern = model.attention_pattern(tokens_BS, heads, attention_mask=mask_BS)
rows = []
for kernel in interp.KERNELS:
    model.set_attn_kernel(kernel)
    acts = interp.capture_heads(model, data.positives, progress=False).results
    pattern = model.attention_pattern(tokens_BS, heads, attention_mask=mask_BS)
    # [batch, heads, query, key]: compare the rows of real query positions.
    pattern_error = (pattern - reference_pattern).abs().amax(dim=(1, 3))[real].max().item()
    rows.append(
        {
            "kernel": kernel,
            "max |Δ capture_heads|": (acts - reference_acts).abs().max().item(),
            "max |Δ pattern|": pattern_error,
        }
    )
print("patterns of", [f"L{layer}H{head}" for layer, head in heads])
pd.DataFrame(rows).set_index("kernel")

# %% [markdown]
# ## Speed and memory (CPU)
#
# The organism's context is only 64 tokens, too short for the kernels to differ, so speed and
# memory are measured on a randomly initialised 2-layer model of GPT-2 small's head shape
# (8 heads of 64 dims here, 1024-token context; `load_model` accepts any `HookedTransformer`).
# Forward passes without the unembedding (`return_type=None`) on random tokens, median of 3
# after a warm-up call (the first flex call at each length compiles). Memory is the peak of
# live tensor bytes allocated by PyTorch during one forward (from the profiler's allocation
# events): eager materialises the `[batch, heads, q, k]` scores and pattern in every layer, the
# fused kernels do not. On a GPU, `torch.cuda.max_memory_allocated` gives the same number
# directly.


# %%
def peak_mib(fn):
    """Peak of live bytes allocated by PyTorch on the CPU while ``fn`` runs, in MiB."""
    # The profiler logs start/stop lines on the C-level stderr; keep them out of the notebook.
    stderr = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                fn()
        finally:
            os.dup2(stderr, 2)
            os.close(stderr)
    events = sorted(
        (e.time_range.start, e.self_cpu_memory_usage)
        for e in prof.events()
        if e.self_cpu_memory_usage
    )
    live = np.cumsum([size for _, size in events])
    return max(0.0, float(live.max())) / 2**20 if len(live) else 0.0


wide_cfg = HookedTransformerConfig(
    n_layers=2,
    d_model=512,
    n_heads=8,
    d_head=64,
    d_mlp=2048,
    n_ctx=1024,
    d_vocab=1000,
    act_fn="gelu",
    normalization_type="LN",
    seed=SEED,
)
wide = interp.load_model(HookedTransformer(wide_cfg), device="cpu")
batch = 2
generator = torch.Generator().manual_seed(SEED)
rows = []
for seq in (256, 1024):
    tokens = torch.randint(wide_cfg.d_vocab, (batch, seq), generator=generator)
    for kernel in interp.KERNELS:
        wide.set_attn_kernel(kernel)
        with torch.no_grad():
            wide.run(tokens, return_type=None)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                wide.run(tokens, return_type=None)
                times.append(time.perf_counter() - start)
            memory = peak_mib(lambda tokens=tokens: wide.run(tokens, return_type=None))
        milliseconds = 1e3 * np.median(times)
        rows.append({"seq": seq, "kernel": kernel, "ms / forward": milliseconds, "peak MiB": memory})
speed = pd.DataFrame(rows).pivot(index="seq", columns="kernel")
speed.reindex(columns=list(interp.KERNELS), level="kernel").round(1)

# %% [markdown]
# On a CPU, flex's compiled kernel is slower than SDPA's; its point is arbitrary masks (below)
# without materialising scores. The memory gap grows with the square of the sequence length.
# `benchmarks/bench_capture.py` measures full GPT-2-small-shaped models (see docs/interp.md).
#
# ## Restricting heads to a sliding window
#
# Mask presets are set per layer or per head: `{(layer, head): interp.sliding_window(w)}`
# lets a head see only itself and the `w - 1` tokens before it; unnamed heads stay causal.
# IOI needs long-range attention (the name mover copies a name from the start of the prompt),
# which raises two questions: does a short window on the circuit's heads break the task, and
# does the same window on every other head leave it intact? The organism's verification does
# not settle the second: its other heads were trained to be irrelevant when their output is
# mean-ablated or taken from another prompt (values they produce anyway), whereas a window
# makes them write outputs they never produced in training, which later layers may read. For
# each condition: the task metric on the positives, and the SAE method's node and edge ROC
# AUC against the (unmasked) circuit, with scores recomputed under the mask.

# %%
WINDOW = 3
circuit_heads = sorted(truth.heads)
other_heads = [
    (layer, head)
    for layer in range(model.n_layers)
    for head in range(model.n_heads)
    if (layer, head) not in truth.heads
]
conditions = {
    "all heads causal": {},
    f"non-circuit heads: window {WINDOW}": {h: interp.sliding_window(WINDOW) for h in other_heads},
    f"circuit heads: window {WINDOW}": {h: interp.sliding_window(WINDOW) for h in circuit_heads},
}
truth_H = np.array(truth.head_mask(model.n_layers, model.n_heads))
rows, node_scores = [], {}
for name, masks in conditions.items():
    model.set_attn_kernel("sdpa", masks or None)
    with torch.no_grad():
        metric = task.metric(model(tokens_BS, mask_BS), data, mask=mask_BS).item()
    result = circuits.score(model, task, seed=SEED, progress=False)
    node_scores[name] = result.node["score"].to_numpy()
    rows.append(
        {
            "condition": name,
            "heads windowed": len(masks),
            task.metric_name: metric,
            "node ROC AUC": circuits.evaluate(result.node, truth.heads).roc_auc,
            "edge ROC AUC": circuits.evaluate(result.edge_node, truth.heads).roc_auc,
        }
    )
model.set_attn_kernel("sdpa")
pd.DataFrame(rows).set_index("condition").round(3)

# %% [markdown]
# The `logit_diff` column answers both questions; compare it with the faithfulness check in
# `01_quickstart` (mean-ablating every non-circuit head). The ROC AUC columns show whether the
# SAE method's ranking of the heads moves when their attention is restricted.

# %%
display(heads_figure(node_scores, model.n_layers, model.n_heads, truth_H=truth_H, title="SAE node"))

# %%
print(f"notebook ran in {time.perf_counter() - notebook_start:.1f} s")
