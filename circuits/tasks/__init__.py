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

from circuits.tasks.base import (
    Task,
    TaskData,
    TaskInfo,
    answer_logits,
    filter_correct,
    kl_divergence,
    model_answer_logits,
    task_metric,
)
from circuits.tasks.behaviour import TaskBehaviour, measure
from circuits.tasks.docstring import DocstringTask
from circuits.tasks.generation import Tokenizer
from circuits.tasks.greater_than import GreaterThanTask
from circuits.tasks.ioi import IOITask
from circuits.tasks.registry import get, info, names
from circuits.tasks.user import UserTask, from_file, from_lists

__all__ = [
    "DocstringTask",
    "GreaterThanTask",
    "IOITask",
    "Task",
    "TaskBehaviour",
    "TaskData",
    "TaskInfo",
    "Tokenizer",
    "UserTask",
    "answer_logits",
    "filter_correct",
    "from_file",
    "from_lists",
    "get",
    "info",
    "kl_divergence",
    "measure",
    "model_answer_logits",
    "names",
    "task_metric",
]
