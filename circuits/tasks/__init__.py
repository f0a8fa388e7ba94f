"""Built-in and user-defined tasks: prompt generators, metrics and ground truths.

```python
from circuits import tasks

task = tasks.get("ioi")
data = task.generate(tokenizer, n=250, seed=0)   # positives, negatives, corrupted, ids
task.metric(logits, data, mask=mask_BS)          # logit difference at the answer position
data, dropped = task.filter_correct(model, data)
tasks.measure(model, task, n=250)                # accuracy, metric on positives / negatives
task.ground_truth(variant="paper")
```
"""

from __future__ import annotations

from interp.lazy import lazy_exports

# Loaded on first use: listing the task names (the CLI's parser) needs no torch.
_EXPORTS = {
    "base": (
        "Task",
        "TaskData",
        "TaskInfo",
        "answer_logits",
        "filter_correct",
        "kl_divergence",
        "model_answer_logits",
        "task_metric",
    ),
    "behaviour": ("TaskBehaviour", "measure"),
    "docstring": ("DocstringTask",),
    "generation": ("Tokenizer",),
    "greater_than": ("GreaterThanTask",),
    "ioi": ("IOITask",),
    "registry": ("get", "info", "names"),
    "user": ("UserTask", "from_file", "from_lists"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
