"""Ground-truth circuits: the dataclass, the JSON schema (version 1), loading and saving."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from interp.heads import head_label, head_mask, parse_head_label

SCHEMA_VERSION = 1
DATA_DIR = Path(__file__).parent
HEAD_RESULT_HOOK = re.compile(r"^blocks\.(\d+)\.attn\.hook_result$")
HEAD_INPUT_HOOK = re.compile(r"^blocks\.(\d+)\.hook_([qkv])_input$")
_HEAD_AXIS_HOOK = re.compile(r"^blocks\.\d+\.(attn\.hook_(result|[qkvz])|hook_[qkv]_input)$")

_REQUIRED_KEYS = {"schema_version", "task", "variant", "model", "heads", "provenance"}
_OPTIONAL_KEYS = {"n_layers", "n_heads", "head_classes", "mlps", "mlp_classes", "edges", "extra"}
_PROVENANCE_KEYS = {"source", "url", "version", "notes"}

Head = tuple[int, int]


@dataclass(frozen=True)
class Provenance:
    """Where a ground truth comes from."""

    source: str
    """Paper or project the circuit was taken from."""
    url: str
    """Where to read it (paper, repository file)."""
    version: str
    """Which version of the source (commit, date, paper version)."""
    notes: str = ""
    """Anything a reader needs to know (differences between variants, caveats)."""


@dataclass(frozen=True)
class Edge:
    """One edge in TransformerLens hook names, as ACDC writes them (receiver <- sender)."""

    receiver: str
    """Hook receiving the edge, e.g. `blocks.1.hook_v_input` or `blocks.3.hook_resid_post`."""
    receiver_head: int | None
    """Head index at the receiver hook; None for a hook without a head axis."""
    sender: str
    """Hook sending the edge, e.g. `blocks.0.attn.hook_result` or `blocks.0.hook_resid_pre`."""
    sender_head: int | None
    """Head index at the sender hook; None for a hook without a head axis."""


@dataclass(frozen=True)
class GroundTruth:
    """A known circuit: heads (layer, head), optional head classes, MLP layers and edges."""

    task: str
    """Task name, e.g. `ioi`."""
    variant: str
    """Which published version, e.g. `acdc` or `paper`; organisms use `organism`."""
    model: str
    """Model the circuit was found in, e.g. `gpt2` or `organism-ioi`."""
    heads: frozenset[Head]
    """Circuit heads as (layer, head)."""
    provenance: Provenance
    """Source, URL, version and notes."""
    n_layers: int | None = None
    """Layers of the model, when known (checks head indices)."""
    n_heads: int | None = None
    """Heads per layer, when known (checks head indices)."""
    head_classes: Mapping[str, frozenset[Head]] = field(default_factory=dict)
    """Functional classes, each a subset of `heads` (e.g. `name mover`)."""
    mlps: frozenset[int] = frozenset()
    """MLP layers in the circuit."""
    mlp_classes: Mapping[str, frozenset[int]] = field(default_factory=dict)
    """Groups of MLP layers, each a subset of `mlps`."""
    edges: tuple[Edge, ...] = ()
    """Edge-level ground truth, when published."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Free-form additional information (e.g. an organism's verification results)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", frozenset(self.heads))
        object.__setattr__(self, "mlps", frozenset(self.mlps))
        object.__setattr__(
            self,
            "head_classes",
            MappingProxyType({k: frozenset(v) for k, v in self.head_classes.items()}),
        )
        object.__setattr__(
            self,
            "mlp_classes",
            MappingProxyType({k: frozenset(v) for k, v in self.mlp_classes.items()}),
        )
        object.__setattr__(self, "edges", tuple(self.edges))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        self._check()

    def _check(self) -> None:
        where = f"ground truth {self.task}/{self.variant}"
        if not self.heads:
            raise ValueError(f"{where}: `heads` is empty; list at least one (layer, head).")
        for layer, head in self.heads:
            if layer < 0 or head < 0:
                raise ValueError(f"{where}: head {(layer, head)} has a negative index.")
            if self.n_layers is not None and layer >= self.n_layers:
                raise ValueError(
                    f"{where}: head L{layer}H{head} is outside the model's {self.n_layers} layers."
                )
            if self.n_heads is not None and head >= self.n_heads:
                raise ValueError(
                    f"{where}: head L{layer}H{head} is outside the model's {self.n_heads} heads "
                    "per layer."
                )
        for name, members in self.head_classes.items():
            stray = members - self.heads
            if stray:
                raise ValueError(
                    f"{where}: head class {name!r} has heads not in `heads`: "
                    f"{head_labels(stray)}; add them to `heads` or drop them from the class."
                )
        for i, edge in enumerate(self.edges):
            for hook, head, side in (
                (edge.sender, edge.sender_head, "sender"),
                (edge.receiver, edge.receiver_head, "receiver"),
            ):
                if _HEAD_AXIS_HOOK.match(hook) and head is None:
                    raise ValueError(
                        f"{where}: edges[{i}]: hook {hook} has a head axis; give `{side}_head`."
                    )
        for name, layers in self.mlp_classes.items():
            stray_layers = layers - self.mlps
            if stray_layers:
                raise ValueError(
                    f"{where}: MLP class {name!r} has layers not in `mlps`: "
                    f"{sorted(stray_layers)}; add them to `mlps`."
                )

    @property
    def labels(self) -> list[str]:
        """Head labels `L{layer}H{head}`, sorted layer-major."""
        return head_labels(self.heads)

    def head_mask(self, n_layers: int, n_heads: int) -> list[bool]:
        """Membership of every head, flattened layer-major (index `layer * n_heads + head`)."""
        for layer, head in self.heads:
            if layer >= n_layers or head >= n_heads:
                raise ValueError(
                    f"ground truth head L{layer}H{head} does not fit a model with {n_layers} "
                    f"layers of {n_heads} heads; is this the ground truth of another model?"
                )
        return head_mask(self.heads, n_layers * n_heads, n_heads).tolist()

    @property
    def head_pairs(self) -> frozenset[tuple[Head, Head, str]]:
        """Head-to-head edges (sender, receiver, `q`|`k`|`v`) among `edges`."""
        pairs = set()
        for edge in self.edges:
            sent = HEAD_RESULT_HOOK.match(edge.sender)
            received = HEAD_INPUT_HOOK.match(edge.receiver)
            # Head-axis hooks always carry a head index (checked in `_check`).
            if sent and received and None not in (edge.sender_head, edge.receiver_head):
                pairs.add(
                    (
                        (int(sent.group(1)), edge.sender_head),
                        (int(received.group(1)), edge.receiver_head),
                        received.group(2),
                    )
                )
        return frozenset(pairs)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema version 1); optional fields are left out when empty."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "task": self.task,
            "variant": self.variant,
            "model": self.model,
        }
        if self.n_layers is not None:
            out["n_layers"] = self.n_layers
        if self.n_heads is not None:
            out["n_heads"] = self.n_heads
        out["heads"] = self.labels
        if self.head_classes:
            out["head_classes"] = {k: head_labels(v) for k, v in self.head_classes.items()}
        if self.mlps:
            out["mlps"] = sorted(self.mlps)
        if self.mlp_classes:
            out["mlp_classes"] = {k: sorted(v) for k, v in self.mlp_classes.items()}
        if self.edges:
            out["edges"] = [
                {
                    "receiver": e.receiver,
                    "receiver_head": e.receiver_head,
                    "sender": e.sender,
                    "sender_head": e.sender_head,
                }
                for e in self.edges
            ]
        out["provenance"] = {
            "source": self.provenance.source,
            "url": self.provenance.url,
            "version": self.provenance.version,
            "notes": self.provenance.notes,
        }
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    def save(self, path: str | Path) -> Path:
        """Write the JSON form to `path` and return it."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def head_labels(heads: Iterable[Head]) -> list[str]:
    """Labels `L{layer}H{head}` of some heads, sorted layer-major."""
    return [head_label(layer, head) for layer, head in sorted(heads)]


def parse_head(value: Any, where: str) -> Head:
    """A head from `"L9H9"` or `[9, 9]`; errors name `where`."""
    if isinstance(value, str):
        pair = parse_head_label(value)
        if pair is not None:
            return pair
    elif (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return value[0], value[1]
    raise ValueError(f'{where}: {value!r} is not a head; write it as "L9H9" or [9, 9].')


def from_dict(data: Mapping[str, Any], where: str = "ground truth") -> GroundTruth:
    """A ground truth from its JSON form, with errors that name the bad field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}.")
    missing = _REQUIRED_KEYS - data.keys()
    if missing:
        raise ValueError(
            f"{where}: missing field(s) {sorted(missing)}; see circuits/ground_truth/README.md."
        )
    unknown = data.keys() - _REQUIRED_KEYS - _OPTIONAL_KEYS
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {sorted(unknown)}; put free-form data under `extra`."
        )
    if data["schema_version"] != SCHEMA_VERSION:
        raise ValueError(
            f"{where}: schema_version {data['schema_version']!r} is not supported; "
            f"this version reads {SCHEMA_VERSION}."
        )
    for key in ("task", "variant", "model"):
        if not isinstance(data[key], str) or not data[key]:
            raise ValueError(f"{where}: `{key}` must be a non-empty string.")
    heads = _parse_heads(data["heads"], f"{where}: heads")
    head_classes = {
        str(name): _parse_heads(members, f"{where}: head_classes[{name!r}]")
        for name, members in _mapping(data.get("head_classes", {}), f"{where}: head_classes")
    }
    mlps = _parse_layers(data.get("mlps", []), f"{where}: mlps")
    mlp_classes = {
        str(name): _parse_layers(layers, f"{where}: mlp_classes[{name!r}]")
        for name, layers in _mapping(data.get("mlp_classes", {}), f"{where}: mlp_classes")
    }
    edges = tuple(
        _parse_edge(e, f"{where}: edges[{i}]") for i, e in enumerate(data.get("edges", []))
    )
    provenance = data["provenance"]
    if not isinstance(provenance, Mapping) or not {"source", "url", "version"} <= provenance.keys():
        raise ValueError(
            f"{where}: `provenance` must be an object with source, url, version (and notes)."
        )
    if provenance.keys() - _PROVENANCE_KEYS:
        raise ValueError(
            f"{where}: unknown provenance field(s) {sorted(provenance.keys() - _PROVENANCE_KEYS)}."
        )
    return GroundTruth(
        task=data["task"],
        variant=data["variant"],
        model=data["model"],
        heads=heads,
        provenance=Provenance(**{k: str(v) for k, v in provenance.items()}),
        n_layers=_optional_int(data.get("n_layers"), f"{where}: n_layers"),
        n_heads=_optional_int(data.get("n_heads"), f"{where}: n_heads"),
        head_classes=head_classes,
        mlps=mlps,
        mlp_classes=mlp_classes,
        edges=edges,
        extra=_mapping_dict(data.get("extra", {}), f"{where}: extra"),
    )


def load_file(path: str | Path) -> GroundTruth:
    """Load a ground truth from a JSON file in the schema of ground_truth/README.md."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground truth file {path} does not exist.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"ground truth file {path} is not valid JSON: {error}") from error
    return from_dict(data, where=str(path))


def available() -> list[tuple[str, str]]:
    """(task, variant) of every shipped ground truth."""
    return sorted(tuple(p.name[: -len(".json")].rsplit(".", 1)) for p in DATA_DIR.glob("*.*.json"))


def load(task: str, variant: str = "acdc") -> GroundTruth:
    """Load the shipped ground truth of a built-in task (`variant` is `acdc` or `paper`)."""
    path = DATA_DIR / f"{task}.{variant}.json"
    if not path.is_file():
        shipped = ", ".join(f"{t}/{v}" for t, v in available())
        raise ValueError(
            f"no shipped ground truth for task {task!r}, variant {variant!r}; shipped: {shipped}."
        )
    return load_file(path)


def _parse_heads(values: Any, where: str) -> frozenset[Head]:
    if not isinstance(values, list):
        raise ValueError(f'{where}: expected a list of heads like ["L9H9", [10, 0]].')
    heads = [parse_head(v, where) for v in values]
    if len(set(heads)) != len(heads):
        raise ValueError(f"{where}: a head is listed twice; list each head once.")
    return frozenset(heads)


def _parse_layers(values: Any, where: str) -> frozenset[int]:
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise ValueError(f"{where}: expected a list of layer indices (integers >= 0).")
    return frozenset(values)


def _parse_edge(value: Any, where: str) -> Edge:
    keys = {"receiver", "receiver_head", "sender", "sender_head"}
    if not isinstance(value, Mapping) or value.keys() != keys:
        raise ValueError(f"{where}: an edge is an object with exactly the fields {sorted(keys)}.")
    for side in ("receiver", "sender"):
        if not isinstance(value[side], str) or not value[side]:
            raise ValueError(f"{where}: `{side}` must be a hook name.")
        head = value[f"{side}_head"]
        if head is not None and (not isinstance(head, int) or isinstance(head, bool) or head < 0):
            raise ValueError(f"{where}: `{side}_head` must be a head index or null.")
    return Edge(**value)


def _mapping(value: Any, where: str) -> Iterable[tuple[str, Any]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected an object.")
    return value.items()


def _mapping_dict(value: Any, where: str) -> dict[str, Any]:
    return dict(_mapping(value, where))


def _optional_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{where}: expected a positive integer.")
    return value
