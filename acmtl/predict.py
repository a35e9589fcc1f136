"""Tag raw text with a trained model, including texts longer than the encoder's 512 positions.

A text longer than ``max_len`` characters is cut into overlapping windows. Each window is
decoded on its own; consecutive windows are joined at a point inside their overlap where the
left window has just closed an entity (or is outside one) and the right window starts a new
one (or is outside one), chosen as close to the middle of the overlap as possible. An entity
shorter than the overlap is therefore always seen whole by one window and never cut at a seam.

A batch that runs out of memory is not fatal: the batch size is halved (down to one window)
and the batch tried again; windows go longest first, so the smaller size suits the rest too.

On the CPU, fp32 linear layers at inference go to oneDNN instead of torch's default BLAS when
that is measurably faster (:func:`cpu_linear_backend`): MKL runs its fp32 GEMM on AMD CPUs at
about half of oneDNN's speed. Same fp32 arithmetic, only the summation order differs.
"""

from __future__ import annotations

import functools
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from acmtl.checkpoint import load_pretrained
from acmtl.data.conll import tags_to_entities
from acmtl.encoders import CharTokenizer
from acmtl.features import Encoded, collate, encode
from acmtl.model import ACMTL

MAX_LEN = 510  # 512 encoder positions minus [CLS] and [SEP]
OVERLAP = 128

log = logging.getLogger(__name__)


def _windows(length: int, max_len: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``max_len`` covering ``length`` characters with ``overlap``."""
    if not 0 <= overlap < max_len:
        raise ValueError(f"window overlap {overlap} must be at least 0 and less than the window length {max_len}")
    if length <= max_len:
        return [0]
    step = max_len - overlap
    starts = list(range(0, length - max_len, step))
    return starts + [length - max_len]


def _stitch(pieces: list[tuple[int, list[int]]], tags: list[str]) -> list[int]:
    closes = [t[0] in "OES" for t in tags]  # an entity may end after this tag
    opens = [t[0] in "OBS" for t in tags]  # an entity may start at this tag
    result = pieces[0][1]
    for start, window in pieces[1:]:
        end = len(result)  # the left part covers [0, end); this window covers [start, start + len)
        middle = (start + end) / 2
        cuts = [p for p in range(start + 1, end + 1) if closes[result[p - 1]] and opens[window[p - start]]]
        cut = min(cuts, key=lambda p: abs(p - middle)) if cuts else int(middle)
        result = result[:cut] + window[cut - start :]
    return result


def _out_of_memory(err: RuntimeError) -> bool:
    """CUDA raises ``torch.OutOfMemoryError``; the CPU allocator a plain RuntimeError that says so."""
    text = str(err)
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def _decode_windows(model: ACMTL, windows: list[Encoded], batch_size: int, device: torch.device) -> list[list[int]]:
    """Decode longest first; a batch that runs out of memory is retried at half the batch size, down to 1."""
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    decoded: list[list[int]] = [[] for _ in windows]
    done = 0
    while done < len(order):
        rows = order[done : done + batch_size]
        try:
            paths = model.decode(*collate([windows[i] for i in rows], rows).to(device).inputs)
        except RuntimeError as err:
            if batch_size == 1 or not _out_of_memory(err):
                raise
            paths = None
        if paths is None:  # outside the except block, so the failed batch's tensors are already freed
            log.warning("out of memory decoding %d windows at once; trying %d at a time", len(rows), batch_size // 2)
            batch_size //= 2
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        for row, path in zip(rows, paths):
            decoded[row] = path
        done += len(rows)
    return decoded


def _linear_arguments(input, weight, bias=None):  # noqa: A002  F.linear's own parameter names
    return input, weight, bias


class _OneDNNLinear(TorchFunctionMode):
    """Sends fp32 ``F.linear`` on the CPU to oneDNN; everything else (autocast, autograd) passes through."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
            x, weight, bias = _linear_arguments(*args, **kwargs)
            if x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32 and weight.dim() == 2:
                return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
        return func(*args, **kwargs)


@functools.cache
def cpu_linear_backend() -> str:
    """``"onednn"`` where oneDNN's fp32 GEMM beats torch's BLAS by 25%+ on a model-sized product, else ``"blas"``.

    Measured once per process (a few milliseconds) rather than assumed from the CPU's vendor.
    """
    linear_pointwise = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if not torch.backends.mkldnn.is_available() or linear_pointwise is None:
        return "blas"
    # A private generator: drawing from the global one would shift the dropout masks of a training
    # run that first evaluates after this measurement (e.g. a resumed run) and break determinism.
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(*shape, generator=generator) for shape in ((256, 512), (512, 512), (512,)))

    def best_of_5(fn) -> float:
        fn()
        times = []
        for _ in range(5):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times)

    try:
        onednn = best_of_5(lambda: linear_pointwise(x, weight, bias, "none", [], ""))
    except RuntimeError:
        return "blas"
    return "onednn" if onednn * 1.25 < best_of_5(lambda: F.linear(x, weight, bias)) else "blas"


def fast_linear(device: torch.device):
    """A context for inference on ``device`` in which fp32 linear layers use the faster GEMM."""
    return _OneDNNLinear() if device.type == "cpu" and cpu_linear_backend() == "onednn" else nullcontext()


@torch.inference_mode()
def tag_encoded(model: ACMTL, items: Sequence[Encoded], *, batch_size: int = 32,
                max_len: int = MAX_LEN, overlap: int = OVERLAP) -> list[list[int]]:
    """Best tag ids for each item (empty items give empty lists); long items are windowed."""
    device = next(model.parameters()).device
    windows, owner = [], []
    for i, item in enumerate(items):
        if len(item) == 0:
            continue
        for start in _windows(len(item), max_len, overlap):
            windows.append(item.window(start, start + max_len))
            owner.append((i, start))
    was_training = model.training
    model.eval()
    try:
        with fast_linear(device):
            decoded = _decode_windows(model, windows, batch_size, device)
    finally:
        model.train(was_training)
    pieces: list[list[tuple[int, list[int]]]] = [[] for _ in items]
    for (i, start), path in zip(owner, decoded):
        pieces[i].append((start, path))
    return [_stitch(p, model.cfg.tags) if p else [] for p in pieces]


def predict_tags(model: ACMTL, tokenizer: CharTokenizer, texts: Sequence[Sequence[str]], *,
                 batch_size: int = 32) -> list[list[str]]:
    """The best BIOES tag of each character of each text (a string or a sequence of characters)."""
    paths = tag_encoded(model, [encode(list(text), tokenizer) for text in texts], batch_size=batch_size)
    return [[model.cfg.tags[i] for i in path] for path in paths]


class NERPredictor:
    """Raw text in, entities out: ``NERPredictor.from_pretrained(run_dir).predict(["..."])``."""

    def __init__(self, model: ACMTL, tokenizer: CharTokenizer, *, batch_size: int = 32, max_len: int = MAX_LEN):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_len = batch_size, max_len

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str = "cpu", **kwargs) -> "NERPredictor":
        """Load a run directory (``runs/<hash>/``) or any directory written by ``save_pretrained``."""
        directory = Path(directory)
        if (directory / "model").is_dir():  # a run directory keeps its best model under model/
            directory = directory / "model"
        model, tokenizer = load_pretrained(directory)
        return cls(model.to(device), tokenizer, **kwargs)

    def predict(self, texts: Sequence[str]) -> list[list[dict]]:
        """For each text, its entities as ``{"type", "start", "end", "text"}`` with ``text[start:end]``."""
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts; wrap a single text in a list")
        items = [encode(list(text), self.tokenizer) if text.strip() else encode([], self.tokenizer)
                 for text in texts]
        paths = tag_encoded(self.model, items, batch_size=self.batch_size, max_len=self.max_len,
                            overlap=min(OVERLAP, self.max_len // 2))
        tags = self.model.cfg.tags
        return [
            [{"type": e.type, "start": e.start, "end": e.end, "text": text[e.start : e.end]}
             for e in tags_to_entities([tags[i] for i in path])]
            for text, path in zip(texts, paths)
        ]

