"""acmtl: a reproducible companion to "Attention-CNN with Multi-Task Learning for Chinese NER"."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from acmtl.serving.predictor import NERPredictor

from acmtl.version import __version__

__all__ = ["__version__", "from_pretrained"]


def from_pretrained(directory: str | Path, *, device: str | torch.device | None = None, **kwargs) -> NERPredictor:
    """Load a trained run (``runs/<hash>/``) or a saved model folder for prediction (device None: CUDA when
    present, else the CPU): ``acmtl.from_pretrained(d)("他毕业于北京交通大学。")``. See
    :class:`acmtl.serving.predictor.NERPredictor`."""
    from acmtl.serving.predictor import NERPredictor  # torch is imported only when a model is loaded

    return NERPredictor.from_pretrained(directory, device=device, **kwargs)
