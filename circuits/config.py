"""Configuration of a run: one dataclass per stage, bundled in ``PipelineConfig``.

The dataclasses double as the CLI's options (each field's docstring is its help text), and
the resolved config is stored with every result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from circuits.ablation import Ablation, check_ablation
from saes.config import SAETrainingConfig

if TYPE_CHECKING:
    from circuits.tasks import Task

__all__ = [
    "DEFAULT_CHUNK_KEYS",
    "SECTIONS",
    "THRESHOLD_RULES",
    "CaptureConfig",
    "EvaluationConfig",
    "PipelineConfig",
    "ScoringConfig",
    "ThresholdRule",
    "default_config",
]


ThresholdRule = Literal["otsu", "largest_gap"]
THRESHOLD_RULES: tuple[str, ...] = ("otsu", "largest_gap")

# Edge counting sorts rows in chunks of about this many keys: 2^24 int32 keys are 64 MB, and
# the per-chunk temporaries (tagged keys, group-boundary masks) stay under ~250 MB.
DEFAULT_CHUNK_KEYS = 1 << 24


@dataclass(frozen=True)
class CaptureConfig:
    """Which prompts are generated and how each head's output is captured."""

    n_prompts: int = 500
    """Prompts scored in total, half positive and half negative (seed paper: 250 + 250);
    a user task with fewer pairs uses all of them."""
    positions: Literal["mean", "last"] = "mean"
    """How a head's output is reduced over positions: mean over real tokens (seed paper) or
    the last real token."""
    include_bos: bool = True
    """Include the BOS position in the mean (the seed paper does)."""
    batch_size: int = 32
    """Prompts per forward pass."""
    filter_correct: bool = False
    """Drop prompt pairs whose positive the model answers wrongly before scoring."""

    def __post_init__(self) -> None:
        if self.n_prompts < 2 or self.n_prompts % 2:
            raise ValueError(
                f"n_prompts={self.n_prompts}; give an even number >= 2 (half positives)."
            )
        if self.positions not in ("mean", "last"):
            raise ValueError(f"positions={self.positions!r}; use 'mean' or 'last'.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; use a positive batch size.")


@dataclass(frozen=True)
class ScoringConfig:
    """How codes become node and edge scores."""

    normalise: bool = False
    """Divide each count by the number of distinct codes (or code pairs) seen at all."""
    edges: bool = True
    """Also score head pairs and rank heads from the top pairs (the paper's edge method)."""
    edge_top_pairs: int | None = None
    """Top unordered head pairs whose heads are counted; None: n_heads_per_layer**2 // 8,
    what the seed code's cut of n_heads_per_layer**2 // 2 ordered-pair entries amounts to."""
    dead_rows: Literal["preact", "zero"] = "preact"
    """Code of a (prompt, head) row with no active latent: argmax of the pre-activations, or
    code 0 as the seed code's argmax of a zero row."""
    chunk_keys: int = DEFAULT_CHUNK_KEYS
    """Edge counting sorts this many (pair, prompt) keys at a time; bounds peak memory."""
    n_permutations: int = 200
    """Shuffled labels behind the calibrated score's null distribution (sae-calibrated)."""
    calibrated_components: int = 32
    """Principal directions kept per head, each whitened, before the shared SAE
    (sae-calibrated)."""
    calibrated_codes: int = 16
    """Codes per (prompt, head): its strongest SAE latents (sae-calibrated; 1 = the
    paper's single argmax code)."""

    def __post_init__(self) -> None:
        if self.edge_top_pairs is not None and self.edge_top_pairs < 1:
            raise ValueError(f"edge_top_pairs={self.edge_top_pairs}; use >= 1 or None.")
        if self.dead_rows not in ("preact", "zero"):
            raise ValueError(f"dead_rows={self.dead_rows!r}; use 'preact' or 'zero'.")
        if self.chunk_keys < 1:
            raise ValueError(f"chunk_keys={self.chunk_keys}; use a positive number.")
        if self.n_permutations < 2:
            raise ValueError(f"n_permutations={self.n_permutations}; use at least 2.")
        for name in ("calibrated_components", "calibrated_codes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; use at least 1.")


@dataclass(frozen=True)
class EvaluationConfig:
    """How scores are judged against a ground truth."""

    threshold_rule: ThresholdRule = "otsu"
    """Ground-truth-free rule that cuts the scores into circuit / not circuit: `otsu`
    (maximal between-class variance) or `largest_gap`."""
    faithfulness: bool = True
    """Ablate the heads outside the found circuit, the ground truth and random circuits, and
    trace each method's faithfulness curve over MIB's circuit sizes (CPR, CMD)."""
    ablation: Ablation = "counterfactual"
    """Faithfulness ablation of the heads outside a circuit: `counterfactual` z from the
    paired corrupted prompt (MIB's and ACDC's default; stable on deep models), `mean` z over
    the corrupted prompts, or `resample` z from a random corrupted prompt of the same
    length."""
    n_random_circuits: int = 5
    """Random circuits (of the found circuit's size) ablated for comparison."""
    faithfulness_prompts: int = 100
    """Clean prompts used for faithfulness (the first ones of the task data)."""

    def __post_init__(self) -> None:
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(
                f"threshold_rule={self.threshold_rule!r}; use one of {', '.join(THRESHOLD_RULES)}."
            )
        check_ablation(self.ablation)
        if self.n_random_circuits < 0 or self.faithfulness_prompts < 1:
            raise ValueError(
                f"n_random_circuits={self.n_random_circuits} must be >= 0 and "
                f"faithfulness_prompts={self.faithfulness_prompts} >= 1."
            )


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's configuration; saved next to every result."""

    capture: CaptureConfig = field(default_factory=CaptureConfig)
    """Prompt generation and per-head capture."""
    sae: SAETrainingConfig = field(default_factory=SAETrainingConfig)
    """Discrete SAE training (saes.SAETrainingConfig)."""
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    """Node and edge scoring."""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    """Metrics and faithfulness."""

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, ready for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineConfig:
        """Inverse of ``to_dict``; unknown sections or fields are errors."""
        sections = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(sections)
        if unknown:
            raise ValueError(f"unknown config section(s) {sorted(unknown)}; use {list(sections)}.")
        built = {}
        for name, values in data.items():
            allowed = {f.name for f in fields(SECTIONS[name])}
            stray = set(values) - allowed
            if stray:
                raise ValueError(
                    f"unknown {name} option(s) {sorted(stray)}; use {sorted(allowed)}."
                )
            built[name] = SECTIONS[name](**values)
        return cls(**built)


def default_config(task: str | Task) -> PipelineConfig:
    """The seed paper's settings for a task (L1 coefficient 0.05 for docstring, else 0.02)."""
    name = task if isinstance(task, str) else task.name
    l1 = 0.05 if name == "docstring" else 0.02
    return PipelineConfig(sae=SAETrainingConfig(l1_coefficient=l1))


SECTIONS: dict[str, type] = {
    item.name: item.default_factory  # type: ignore[misc]
    for item in fields(PipelineConfig)
}
"""Config section name -> its dataclass, in ``PipelineConfig`` order (the CLI's groups)."""
