"""Versioned ground-truth circuits with provenance, and the loader for organisms' files."""

from circuits.ground_truth.loader import (
    SCHEMA_VERSION,
    Edge,
    GroundTruth,
    Provenance,
    available,
    from_dict,
    head_labels,
    load,
    load_file,
    parse_head,
)

__all__ = [
    "SCHEMA_VERSION",
    "Edge",
    "GroundTruth",
    "Provenance",
    "available",
    "from_dict",
    "head_labels",
    "load",
    "load_file",
    "parse_head",
]
