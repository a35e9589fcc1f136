"""Inference backends beyond eager PyTorch: ONNX Runtime in fp32 and with int8 weights.

Only the network runs on the backend: for AC-MTL, everything before the CRF (encoder, pinyin
embeddings, attention, CNN, emission layer), exported by ``torch.onnx.export`` (the dynamo exporter)
with dynamic batch and length axes; the CRF's Viterbi decode stays in PyTorch (:mod:`acmtl.core.crf`).
The same export serves the benchmark's reference (a transformers token classifier), so the two can be
compared on one backend.

* ``eager``: the model as it is (no export).
* ``onnx``: ONNX Runtime on the CPU, all graph optimisations on, fp32.
* ``onnx-int8``: the same graph with int8 weights (per channel) and activations quantised on the fly
  (``onnxruntime.quantization.quantize_dynamic``, the matrix products with weights). Faster, not
  bit-identical: its entity F1 change is measured by :func:`acmtl.companion.bench.compare_backends`.

Exports are cached as ``<cache_dir>/<name>-<key>.onnx``, ``key`` a hash of the model's weights, its
configuration and the exporter's versions, so a file never outlives the weights it was made from.
The packages come with the optional extra: ``pip install -e '.[onnx]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from acmtl.paths import cache_dir as acmtl_cache_dir

BACKENDS = ("eager", "onnx", "onnx-int8")
ONNX_PACKAGES = ("onnxruntime", "onnx", "onnxscript")  # the 'onnx' extra of pyproject.toml
EXPORT_FORMAT = 3  # bump when the exported graph would differ for the same weights


class BackendError(RuntimeError):
    """A backend that cannot run here: its packages are missing, or the model cannot be exported."""


def missing_packages() -> list[str]:
    """The 'onnx' extra's packages that are not installed (empty: the ONNX backends can run)."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def available_backends() -> list[str]:
    """The backends this installation can run, eager first."""
    return list(BACKENDS) if not missing_packages() else ["eager"]


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    missing = missing_packages()
    if backend != "eager" and missing:
        raise BackendError(f"backend {backend!r} needs {', '.join(missing)}: pip install -e '.[onnx]'")


def versions() -> dict[str, str | None]:
    """Versions of the 'onnx' extra's packages (None where missing), for provenance and the cache key."""
    found = {}
    for name in ONNX_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def model_key(model: nn.Module, config: dict) -> str:
    """A hash of the weights (names, dtypes, shapes, bytes), ``config`` and the exporter's versions."""
    digest = hashlib.sha256(json.dumps({"config": config, "format": EXPORT_FORMAT, "torch": torch.__version__,
                                        **versions()}, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()[:16]


class OnnxModel:
    """An ONNX Runtime session called like the module it was exported from: tensors in, one tensor out.

    ``names``: the module's arguments in order; each is fed by name (the exporter drops unused ones)."""

    def __init__(self, path: Path, names: Sequence[str], threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()  # the thread count torch uses
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # no CPU arena: it keeps each session's largest batch's activations for good (1-2 GiB per session for the
        # benchmark's 398-character batch, four sessions side by side); freed after each run, as eager PyTorch's are
        options.enable_cpu_mem_arena = False
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names, graph_inputs = list(names), {i.name for i in self.session.get_inputs()}
        if not graph_inputs <= set(self.names):
            raise BackendError(f"{path}: inputs {sorted(graph_inputs)} are not the model's arguments {self.names}")
        self.fed = [name in graph_inputs for name in self.names]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: x.detach().cpu().numpy()
                for name, x, fed in zip(self.names, inputs, self.fed, strict=True) if fed}
        return torch.from_numpy(self.session.run(None, feed)[0]).to(inputs[0].device)


class _Emissions(nn.Module):
    """The exported part of AC-MTL: ids and mask in, NER emission scores [B, T, K] out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, char_ids, syllable_ids, tone_ids, mask) -> torch.Tensor:
        return self.model.emissions(char_ids, syllable_ids, tone_ids, mask)[0]


class _Logits(nn.Module):
    """The exported part of a transformers token classifier: token ids and masks in, logits out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids, attention_mask) -> torch.Tensor:
        return self.model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask).logits


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file beside it, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".onnx")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)  # mkstemp makes private files; the cache is shared
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextlib.contextmanager
def _known_warnings_silenced():
    """Three known, harmless warnings: onnx_ir's "attribute type is ambiguous" (an empty list attribute,
    defaulted to INTS, which is right), onnxruntime's advice to pre-process a model before quantizing
    (shape inference for static shapes; ours are dynamic), and torch.export's own use of the deprecated
    ``LeafSpec`` (torch 2.13, inside the exporter). They would fill a notebook's output."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
            yield
    finally:
        logging.disable(logging.NOTSET)


def _export(module: nn.Module, example: dict[str, torch.Tensor], path: Path) -> None:
    """Export with every input's axes 0 (batch) and 1 (length) dynamic; the exporter's chatter goes to stderr.

    Inputs go by keyword, so the graph's inputs keep the forward's argument names; unused ones (pinyin ids
    of a model without pinyin) may be left out of the graph, which is why :class:`OnnxModel` feeds by name."""
    dims = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    with contextlib.redirect_stdout(sys.stderr), _known_warnings_silenced():  # predict writes JSON lines to stdout
        torch.onnx.export(module, (), str(path), kwargs=example, dynamo=True, verbose=False,
                          output_names=["scores"], external_data=False,
                          dynamic_shapes={name: dims for name in example}, optimize=True)


def _quantize(source: Path, target: Path) -> None:
    """int8 weights per output channel with 7 bits of range: x86 CPUs without VNNI multiply u8 x s8 with
    VPMADDUBSW, which can saturate at the full range (onnxruntime's advice); on an MSRA test sample this
    tracked fp32's tags more closely than per-tensor 8-bit weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _known_warnings_silenced():
        quantize_dynamic(source, target, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=True)


def _exported(wrapper: nn.Module, example: dict[str, torch.Tensor], name: str, config: dict, backend: str,
              cache_dir: Path | None) -> Path:
    """The cached ONNX file of ``wrapper`` for ``backend``, exported (and quantised) on first use."""
    model = wrapper.model
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise BackendError(f"backend {backend!r} runs on the CPU (onnxruntime's CPU build): load the model there")
    folder = Path(cache_dir) if cache_dir is not None else acmtl_cache_dir() / "onnx"
    fp32 = folder / f"{name}-{model_key(model, config)}.onnx"
    if not fp32.is_file():
        was_training = model.training
        wrapper.eval()
        try:
            with torch.no_grad():
                _atomic(fp32, lambda path: _export(wrapper, example, path))
        except Exception as err:  # the exporter raises many kinds; the user needs to know which model failed
            raise BackendError(f"cannot export {name} to ONNX: {type(err).__name__}: {err}") from err
        finally:
            model.train(was_training)
    if backend == "onnx":
        return fp32
    int8 = fp32.with_suffix(".int8.onnx")
    if not int8.is_file():
        _atomic(int8, lambda path: _quantize(fp32, path))
    return int8


def _example(names: Sequence[str], vocabulary: int, lengths: Sequence[int]) -> dict[str, torch.Tensor]:
    """A small batch with ragged lengths (the exporter traces one; the axes stay dynamic): ids, and the mask.

    Every input is its own tensor: the exporter would merge inputs that are one tensor into one graph input."""
    generator = torch.Generator().manual_seed(0)
    width = max(lengths)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return {name: torch.randint(1, vocabulary, (len(lengths), width), generator=generator) * mask
            if name.endswith("ids") else mask.clone() for name in names}


def acmtl_emissions(model: nn.Module, backend: str, *, cache_dir: Path | None = None,
                    threads: int | None = None) -> Callable[..., torch.Tensor] | None:
    """``model.emissions(...)[0]`` on ``backend``: a callable of (char, syllable, tone ids, mask); None for eager."""
    _check(backend)
    if backend == "eager":
        return None
    example = _example(["char_ids", "syllable_ids", "tone_ids", "mask"], 5, [7, 5, 3])  # 5: pinyin ids exist
    path = _exported(_Emissions(model), example, "acmtl", model.cfg.to_dict(), backend, cache_dir)
    return OnnxModel(path, list(example), threads)


def token_classifier_logits(model: nn.Module, backend: str, *, cache_dir: Path | None = None,
                            threads: int | None = None) -> Callable[..., torch.Tensor] | None:
    """A transformers token classifier's logits on ``backend``: a callable of (input_ids, token_type_ids,
    attention_mask); None for eager."""
    _check(backend)
    if backend == "eager":
        return None
    example = _example(["input_ids", "token_type_ids", "attention_mask"], 100, [9, 6, 4])
    example["token_type_ids"] = torch.zeros_like(example["token_type_ids"])
    example["attention_mask"] = example["attention_mask"].long()
    path = _exported(_Logits(model), example, "token_classifier", model.config.to_dict(), backend, cache_dir)
    return OnnxModel(path, list(example), threads)
