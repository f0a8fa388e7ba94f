"""Every scoring method, one module each, in one registry.

| method | module | follows |
|---|---|---|
| `sae` | `sae.py` | O'Neill & Bui 2024: exclusive SAE codes per head (and head pair) |
| `sae-calibrated` | `sae_calibrated.py` | standardised heads, code shift between labels |
| `activation-patching` | `activation_patching.py` | per-head z ablation, exhaustive |
| `attribution-patching` | `attribution_patching.py` | Nanda 2023 / Syed et al. 2023, node level |
| `eap` | `eap.py` | Syed, Rager & Conmy 2023, edges between heads |
| `acdc` | `acdc.py` | Conmy et al. 2023, threshold sweep |
| `hisp` | `hisp.py` | Michel et al. 2019 head importance |
| `random`, `norm` | `controls.py` | control rankings: chance, and label-free output norm |

Shared pieces: `registry.py` (the leaf registry), `result.py` (`ScoreResult`, the one result
type), `context.py` (`MethodContext`, what a method sees), `patching.py` (batches, reference z
and options of the patching methods), `graph.py` (the head-granularity graph of eap and
acdc). Adding a method means adding one module that registers itself with
`@register(name)` (or `@patching_method(name, Config)`) and importing it below.

```python
from circuits import methods

result = methods.acdc(model, task, data, methods.ACDCConfig(thresholds=(0.01, 0.1)))
result.node          # layer, head, label, score, rank (+ signed effect where defined)
result.graph_edges   # upstream, downstream, score (+ effect) for eap and acdc
methods.names()      # every registered method
```

Through `circuits.score(..., method=name)` / the CLI, a patching method runs with its
default options, the pipeline's `capture.batch_size` and progress flag; patching methods and
`norm` are deterministic, so `run_trials` / `--trials N` runs them once. See
docs/baselines.md and docs/calibrated.md.
"""

from circuits.methods import controls, sae, sae_calibrated  # noqa: F401  (they register)
from circuits.methods.acdc import ACDCConfig, acdc, prune
from circuits.methods.activation_patching import ActivationPatchingConfig, activation_patching
from circuits.methods.attribution_patching import (
    AttributionPatchingConfig,
    attribution_patching,
)
from circuits.methods.context import MethodContext
from circuits.methods.eap import EAPConfig, eap
from circuits.methods.graph import EdgePatcher, HeadGraph
from circuits.methods.hisp import HISPConfig, hisp
from circuits.methods.patching import AblationConfig, PatchingConfig, make_batches
from circuits.methods.registry import Method, MethodFn, get, names, register
from circuits.methods.result import ScoreResult, head_result

__all__ = [
    "ACDCConfig",
    "AblationConfig",
    "ActivationPatchingConfig",
    "AttributionPatchingConfig",
    "EAPConfig",
    "EdgePatcher",
    "HISPConfig",
    "HeadGraph",
    "Method",
    "MethodContext",
    "MethodFn",
    "PatchingConfig",
    "ScoreResult",
    "acdc",
    "activation_patching",
    "attribution_patching",
    "eap",
    "get",
    "head_result",
    "hisp",
    "make_batches",
    "names",
    "prune",
    "register",
]
