"""Tag raw text with a trained model, including texts longer than the encoder's 512 positions.

A text longer than ``max_len`` characters is cut into overlapping windows. Each window is
decoded on its own; consecutive windows are joined at a point inside their overlap where the
left window has just closed an entity (or is outside one) and the right window starts a new
one (or is outside one), chosen as close to the middle of the overlap as possible. An entity
shorter than the overlap is therefore always seen whole by one window and never cut at a seam.

Each entity comes with a confidence: the CRF's probability that exactly this span carries exactly
the predicted tags (forward-backward over the window the entity was decoded in, see
:func:`acmtl.core.crf.span_probability`), not a softmax of emission scores.

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
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from tqdm.std import tqdm

from acmtl.core.crf import span_probability
from acmtl.core.encoders import CharTokenizer
from acmtl.core.features import Encoded, collate, encode
from acmtl.core.model import ACMTL
from acmtl.data.conll import tags_to_entities

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


def _stitch(pieces: list[tuple[int, list[int]]], tags: list[str]) -> tuple[list[int], list[int]]:
    """The joined path and, for each position, the index of the piece its tag comes from."""
    closes = [t[0] in "OES" for t in tags]  # an entity may end after this tag
    opens = [t[0] in "OBS" for t in tags]  # an entity may start at this tag
    result, owner = pieces[0][1], [0] * len(pieces[0][1])
    for k, (start, window) in enumerate(pieces[1:], start=1):
        end = len(result)  # the left part covers [0, end); this window covers [start, start + len)
        middle = (start + end) / 2
        cuts = [p for p in range(start + 1, end + 1) if closes[result[p - 1]] and opens[window[p - start]]]
        cut = min(cuts, key=lambda p: abs(p - middle)) if cuts else int(middle)
        result = result[:cut] + window[cut - start :]
        owner = owner[:cut] + [k] * (start + len(window) - cut)
    return result, owner


def _out_of_memory(err: RuntimeError) -> bool:
    """CUDA raises ``torch.OutOfMemoryError``; the CPU allocator a plain RuntimeError that says so."""
    text = str(err)
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


@dataclass(frozen=True)
class _Lattice:
    """One window's forward-backward result (float64, on the CPU): what entity confidences are computed from."""

    alpha: np.ndarray  # [n, K]
    beta: np.ndarray  # [n, K]
    emissions: np.ndarray  # [n, K]
    log_z: float

    def __len__(self) -> int:
        return len(self.alpha)


def _decode_with_lattices(model: ACMTL, network: Callable | None = None) -> Callable:
    """A ``model.decode`` that also returns each sentence's :class:`_Lattice`; ``network``, if given, computes
    the emission scores in place of ``model.emissions`` (an inference backend, :mod:`acmtl.serving.backends`)."""

    def decode(char_ids, syllable_ids, tone_ids, mask) -> list[tuple[list[int], _Lattice]]:
        emissions = (network or (lambda *inputs: model.emissions(*inputs)[0]))(char_ids, syllable_ids, tone_ids, mask)
        paths = model.crf.viterbi(emissions, mask)
        alpha, beta, log_z = (t.cpu().numpy() for t in model.crf.forward_backward(emissions, mask))
        em = emissions.double().cpu().numpy()
        return [(path, _Lattice(alpha[b, : len(path)], beta[b, : len(path)], em[b, : len(path)], float(log_z[b])))
                for b, path in enumerate(paths)]

    return decode


def _decode_windows(model: ACMTL, windows: list[Encoded], batch_size: int, device: torch.device,
                    decode: Callable | None = None, bar: tqdm | None = None) -> list:
    """Decode longest first; a batch that runs out of memory is retried at half the batch size, down to 1.

    ``decode`` (default ``model.decode``) maps a batch's inputs to one result per window; ``bar`` counts them."""
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    decoded: list = [[] for _ in windows]
    done = 0
    while done < len(order):
        rows = order[done : done + batch_size]
        try:
            paths = (decode or model.decode)(*collate([windows[i] for i in rows], rows).to(device).inputs)
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
        if bar is not None:
            bar.update(len(rows))
    return decoded


def _linear_arguments(input, weight, bias=None):  # noqa: A002  F.linear's names
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
def tag_encoded(model: ACMTL, items: Sequence[Encoded], *, batch_size: int = 32, max_len: int = MAX_LEN,
                overlap: int = OVERLAP, network: Callable | None = None,
                progress: str | None = None) -> list[list[int]]:
    """Best tag ids for each item (empty items give empty lists); long items are windowed. ``network``, if
    given, computes the emission scores in place of ``model.emissions`` (:mod:`acmtl.serving.backends`); ``progress``,
    if given, labels a progress bar (on stderr) over the windows."""
    decode = None if network is None else (
        lambda *inputs: [(path, None) for path in model.crf.viterbi(network(*inputs), inputs[-1])])
    return [path for path, _, _ in _tag_windows(model, items, batch_size, max_len, overlap, decode, progress)]


def _tag_windows(model: ACMTL, items: Sequence[Encoded], batch_size: int, max_len: int, overlap: int,
                 decode: Callable | None = None,
                 progress: str | None = None) -> list[tuple[list[int], list[int], list[tuple[int, object]]]]:
    """For each item: its stitched path, the window each position's tag comes from, and the windows as
    ``(start, decode's result)``."""
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
        with fast_linear(device), tqdm(total=len(windows), desc=progress, unit="window", disable=progress is None,
                                       leave=False) as bar:
            decoded = _decode_windows(model, windows, batch_size, device, decode, bar)
    finally:
        model.train(was_training)
    pieces: list[list[tuple[int, object]]] = [[] for _ in items]
    for (i, start), result in zip(owner, decoded):
        pieces[i].append((start, result))
    path_of = (lambda r: r[0]) if decode else (lambda r: r)
    tagged = []
    for p in pieces:
        path, from_window = _stitch([(start, path_of(r)) for start, r in p], model.cfg.tags) if p else ([], [])
        tagged.append((path, from_window, p))
    return tagged


def _entity_scores(entities: list, path: list[int], from_window: list[int], windows: list[tuple[int, tuple]],
                   transitions: np.ndarray) -> list[float | None]:
    """Each entity's :func:`~acmtl.core.crf.span_probability` in the window its first tag came from (or, should the
    stitch have joined it from two windows, any window that holds all of it; None if none does)."""
    scores = []
    for e in entities:
        score = None
        for k in (from_window[e.start], *range(len(windows))):
            start, (_, lattice) = windows[k]
            if start <= e.start and e.end <= start + len(lattice):
                score = span_probability(lattice.alpha, lattice.beta, lattice.emissions, transitions, lattice.log_z,
                                         e.start - start, path[e.start : e.end])
                break
        scores.append(score)
    return scores


def default_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict_tags(model: ACMTL, tokenizer: CharTokenizer, texts: Sequence[Sequence[str]], *,
                 batch_size: int = 32) -> list[list[str]]:
    """The best BIOES tag of each character of each text (a string or a sequence of characters)."""
    paths = tag_encoded(model, [encode(list(text), tokenizer) for text in texts], batch_size=batch_size)
    return [[model.cfg.tags[i] for i in path] for path in paths]


def predict_entities(model: ACMTL, tokenizer: CharTokenizer, texts: Sequence[str], *, batch_size: int = 32,
                     max_len: int = MAX_LEN, network: Callable | None = None) -> list[list[dict]]:
    """The entities of each text, ``{"type", "start", "end", "text", "score"}`` with ``text == input[start:end]``
    and ``score`` the CRF's probability of exactly this span with exactly these tags
    (:func:`acmtl.core.crf.span_probability`); texts longer than ``max_len`` are windowed (module docstring).
    ``network``, if given, computes the emission scores in place of ``model.emissions``."""
    items = [encode(list(text), tokenizer) if text.strip() else encode([], tokenizer) for text in texts]
    with torch.inference_mode():
        tagged = _tag_windows(model, items, batch_size, max_len, min(OVERLAP, max_len // 2),
                              _decode_with_lattices(model, network))
        transitions = model.crf.decoding_scores()[1].double().cpu().numpy()
    tags = model.cfg.tags
    results = []
    for text, (path, from_window, windows) in zip(texts, tagged):
        entities = tags_to_entities([tags[i] for i in path])
        scores = _entity_scores(entities, path, from_window, windows, transitions)
        results.append([{"type": e.type, "start": e.start, "end": e.end, "text": text[e.start : e.end],
                         "score": score} for e, score in zip(entities, scores)])
    return results
