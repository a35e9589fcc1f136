"""``python -m acmtl bench``: AC-MTL's speed beside a plain transformers tagger, measured in one run.

The paper reports AC-MTL's tokens/s on a V100 (:data:`PAPER_TOKENS_PER_S`, from :mod:`acmtl.companion.claims`);
numbers from another machine say little, so every model here is timed on the machine at hand,
interleaved, under one fixed protocol:

* Text: MSRA's official test sentences, every ``sample_every``-th one (a fixed, evenly spaced
  sample: the full set would keep BERT-base busy for many minutes). Speed is real characters
  tagged per second; padding, [CLS] and [SEP] are not counted.
* Inference is the whole pipeline, text in, one tag per character out: ids and pinyin
  features, batches of 32 sorted by length (longest first), the forward pass under
  ``torch.inference_mode``, CRF Viterbi decoding, windows for texts over 510 characters.
* The reference is what a plain transformers user writes: ``AutoModelForTokenClassification``
  on the same encoder (m3e-small), ``tokenizer(chars, is_split_into_words=True, padding=True,
  truncation=True)``, argmax, and ``word_ids()`` to map tokens back to characters.
* One untimed warm-up pass per model and precision (it also counts FLOPs; the first pass is the slowest), then
  ``repeats`` timed passes, taken round-robin over the models (A B C A B C ...) so a change in the machine's load
  hits all of them alike. Each timing is reported as the median pass and the range of the passes (slowest,
  fastest: ``*_range``); a ratio of two models is the ratio of their medians and carries the range of the
  per-pass ratios, pass i of one against pass i of the other, timed in the same round (``ratios["ranges"]``).
  Untrained models: weights do not change speed.
* Precisions: fp32, fp16 autocast on CUDA, and bf16 autocast where the hardware runs bf16 natively
  (CUDA with bf16, a CPU with AMX or AVX512-BF16: :func:`acmtl.core.train.bf16_supported`); elsewhere bf16
  is emulated and many times slower, so it is not measured. On CUDA the BERT-base-size AC-MTL (the
  paper's profile) is also read against the paper's tokens/s, the one comparison a GPU makes fair.
* Backends (:mod:`acmtl.serving.backends`, CPU only): AC-MTL and the reference also run on ONNX Runtime,
  fp32 and int8, at the same thread count, timed in the same rounds as the eager models (fp32 only).
  Each AC-MTL backend is read against the reference in eager PyTorch as a plain user runs it, and
  against the reference on the same backend (like for like); the fastest backend meets the target
  or not. Exports are cached (``$ACMTL_CACHE/onnx``), so only the first run pays for them.
* Threads (CPU): each count from 1 up to the usable cores (powers of two and the maximum) is
  tried on one batch and the fastest is used for every model. On a CPU that another job keeps
  busy, fewer threads than cores win, because torch's thread pool waits for its slowest thread.
* Training: characters/s of the training step (forward, loss, backward, gradient clipping at
  1.0, fused AdamW, as ``train`` and a transformers ``Trainer`` use it) of AC-MTL, encoder+CRF
  and the reference on the same length-bucketed batches of MSRA training sentences, prepared
  before timing for each (as ``train`` encodes once and a transformers user tokenises once); the
  reference's loss is its token-level cross-entropy. Training takes ``train_repeats`` timed passes,
  more than inference's ``repeats``: one pass is 4 batches, and on a quiet 2-core CPU the AC-MTL /
  reference ratio of single passes ranged from 0.65 to 0.87.
* Latency: one 50-character sentence, ``NERPredictor.predict`` against the reference's
  tokenise-forward-argmax-map, p50 and p95 over ``latency_calls`` calls after 5 warm-up calls.
* Hardware: the matrix-multiply throughput (GFLOP/s of a square matmul, timed in the same
  rounds as the models) at the same thread count, so each model's FLOPs per token
  (``torch.utils.flop_counter``; LSTMs and oneDNN's linear added by formula) times its speed
  reads as a fraction of what the hardware can do.
* GEMM library: acmtl's inference sends fp32 linear layers on the CPU to oneDNN where that is
  measurably faster than torch's default BLAS (:func:`acmtl.core.predict.cpu_linear_backend`; MKL's
  fp32 GEMM runs at about half speed on AMD CPUs). The reference runs as a plain user gets it;
  where the choice differs, a second reference row runs on acmtl's choice, for a like-for-like
  ratio. Training uses the default BLAS for both.
* Targets (:data:`TARGETS`) are judged like for like: AC-MTL against the reference on the same GEMM
  library. The inference ratio against the reference as a plain user runs it is reported beside,
  under its own name, since there the two models differ in the library as well as in the model.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from torch.nn.utils.rnn import PackedSequence
from torch.utils.flop_counter import FlopCounterMode

from acmtl.companion.claims import paper_speed_params
from acmtl.companion.progress import release_memory
from acmtl.core.checkpoint import build_model, load_pretrained
from acmtl.core.encoders import DEFAULT_ENCODER, bert_base_config, resolve_encoder
from acmtl.core.evaluate import score
from acmtl.core.features import Batch, encode, encode_sentences, training_batches
from acmtl.core.model import ACMTL, ModelConfig, count_parameters
from acmtl.core.predict import MAX_LEN, cpu_linear_backend, fast_linear, tag_encoded
from acmtl.core.train import bf16_supported, tag_names
from acmtl.data.conll import Sentence, tags_to_entities
from acmtl.data.corpora import load_corpus
from acmtl.serving import backends as onnx_backends
from acmtl.serving.predictor import NERPredictor

PAPER_TOKENS_PER_S = float(paper_speed_params().set_index("model").loc["AC-MTL", "paper_tokens_per_s"])  # V100
TRAINED = ("acmtl", "encoder_crf", "reference")  # the models whose training step is timed
TARGETS = {"inference": 1.0, "training": 0.8}  # AC-MTL / reference: same precision, run and GEMM library
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16")
AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}  # precision -> autocast dtype (fp32: none)


@dataclass(frozen=True)
class Protocol:
    sample_every: int  # every n-th MSRA test sentence
    repeats: int  # timed inference passes per model and precision (the median and range are reported)
    train_repeats: int  # timed training passes (more than inference's: one pass is short and noisy)
    train_batches: int  # length-bucketed training batches per timed training pass
    train_batch_size: int
    latency_calls: int
    matmul_size: int
    batch_size: int = 32
    latency_chars: int = 50


FULL = Protocol(sample_every=16, repeats=5, train_repeats=7, train_batches=4, train_batch_size=32,
                latency_calls=100, matmul_size=2048)
QUICK = Protocol(sample_every=289, repeats=2, train_repeats=2, train_batches=1, train_batch_size=8,
                 latency_calls=3, matmul_size=512)

MODELS = {
    "acmtl": "AC-MTL, m3e-small encoder (CRF)",
    "acmtl_bert_base": "AC-MTL, BERT-base size (CRF)",
    "reference": "transformers token classifier, m3e-small (argmax)",
    "reference_fast_gemm": "  the same, with AC-MTL's CPU GEMM choice",
    "encoder_crf": "encoder+CRF, m3e-small",
    "bilstm_crf": "BiLSTM-CRF",
}


# -- timed passes: the median and the range -------------------------------------------------------


def pass_speeds(characters: int, seconds: Sequence[float]) -> list[float]:
    """Characters per second of each timed pass, in the order the passes ran."""
    return [characters / s for s in seconds]


def speed_of(characters: int, seconds: Sequence[float]) -> tuple[float, list[float]]:
    """Characters per second of the median pass, and [slowest, fastest] pass."""
    return characters / statistics.median(seconds), [characters / max(seconds), characters / min(seconds)]


def ratio_range(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """[min, max] of ``ours[i] / theirs[i]``: pass i of two models timed in the same round (the models are
    interleaved, so both passes met the same load on the machine)."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return [min(ratios), max(ratios)]


# -- the pipelines ------------------------------------------------------------------------------


class TrainLoop:
    """The timed training step, the same for every model: loss, backward, clip at 1.0, fused AdamW."""

    def __init__(self, model: torch.nn.Module, losses: list[Callable[[], torch.Tensor]], chars: int,
                 device: torch.device) -> None:
        self.model, self.losses, self.chars, self.device = model, losses, chars, device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, fused=True)

    def run(self, precision: str) -> int:
        """One pass over the prepared batches; returns the characters trained on. fp16 scales the loss."""
        self.model.train()
        scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        for loss_fn in self.losses:
            with _autocast(self.device, precision):
                loss = loss_fn()
            self.optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            scaler.step(self.optimizer)
            scaler.update()
            loss.item()
        return self.chars


class ACMTLPipeline:
    """acmtl's own path: ``encode`` (ids + pinyin), then ``tag_encoded`` (batches, forward, Viterbi).

    ``network``: the emission scores from an inference backend (:mod:`acmtl.serving.backends`), else eager."""

    def __init__(self, model: ACMTL, tokenizer, device: torch.device, batch_size: int,
                 network: Callable[..., torch.Tensor] | None = None) -> None:
        self.model, self.tokenizer, self.batch_size = model.to(device).eval(), tokenizer, batch_size
        self.network = network
        self.predictor = NERPredictor(self.model, tokenizer, batch_size=batch_size)
        self.stage_seconds = {"prepare": 0.0, "viterbi": 0.0}
        viterbi = model.crf.viterbi

        def timed_viterbi(emissions, mask):  # shadows the method on this instance: times the CRF step
            started = time.perf_counter()
            try:
                return viterbi(emissions, mask)
            finally:
                self.stage_seconds["viterbi"] += time.perf_counter() - started

        model.crf.viterbi = timed_viterbi

    def params(self) -> dict[str, int]:
        return count_parameters(self.model)

    def infer(self, texts: Sequence[Sequence[str]]) -> int:
        self.stage_seconds = dict.fromkeys(self.stage_seconds, 0.0)
        started = time.perf_counter()
        items = [encode(chars, self.tokenizer) for chars in texts]
        self.stage_seconds["prepare"] = time.perf_counter() - started
        return sum(len(path) for path in tag_encoded(self.model, items, batch_size=self.batch_size,
                                                     network=self.network))

    def predict_one(self, text: str) -> list[dict]:
        return self.predictor.predict([text])[0]

    def training(self, sentences: Sequence[Sentence], batches: Sequence[Batch], device: torch.device) -> TrainLoop:
        moved = [b.to(device) for b in batches]
        losses = [lambda b=b: self.model(*b.inputs, b.tag_ids).loss for b in moved]
        return TrainLoop(self.model, losses, sum(int(b.mask.sum()) for b in batches), device)


class ReferencePipeline:
    """A plain transformers user's tagger: the HF tokenizer, ``AutoModelForTokenClassification``, argmax."""

    def __init__(self, encoder: str, tags: list[str], device: torch.device, batch_size: int,
                 fast_gemm: bool = False) -> None:
        source = resolve_encoder(encoder)
        self.fast_gemm = fast_gemm  # like-for-like: the GEMM routing that acmtl.core.predict applies
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        self.model = transformers.AutoModelForTokenClassification.from_pretrained(
            source, num_labels=len(tags)).to(device).eval()
        self.tags, self.device, self.batch_size = tags, device, batch_size
        self.logits: Callable[..., torch.Tensor] | None = None  # an inference backend's, else the model's

    def on_backend(self, backend: str, threads: int) -> ReferencePipeline:
        """The same tagger (same weights) with its logits from ``backend`` (:mod:`acmtl.serving.backends`)."""
        other = copy.copy(self)
        other.fast_gemm = False
        other.logits = onnx_backends.token_classifier_logits(self.model, backend, threads=threads)
        return other

    def _scores(self, encoding) -> torch.Tensor:
        if self.logits is None:
            return self.model(**encoding.to(self.device)).logits
        return self.logits(encoding["input_ids"], encoding["token_type_ids"], encoding["attention_mask"])

    def params(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.model.parameters())
        encoder = sum(p.numel() for p in self.model.base_model.parameters())
        return {"total": total, "encoder": encoder, "added": total - encoder}

    def _tokenize(self, texts: Sequence[Sequence[str]]):
        return self.tokenizer([list(t) for t in texts], is_split_into_words=True, padding=True, truncation=True,
                              max_length=MAX_LEN + 2, return_tensors="pt")

    @staticmethod
    def _first_tokens(encoding, row: int) -> dict[int, int]:
        """Character index -> position of its first token (characters cut by truncation have none)."""
        first: dict[int, int] = {}
        for position, char in enumerate(encoding.word_ids(row)):
            if char is not None and char not in first:
                first[char] = position
        return first

    @torch.inference_mode()
    def infer(self, texts: Sequence[Sequence[str]]) -> int:
        with fast_linear(self.device) if self.fast_gemm else nullcontext():
            return self._infer(texts)

    def _infer(self, texts: Sequence[Sequence[str]]) -> int:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        tagged = 0
        for start in range(0, len(order), self.batch_size):
            encoding = self._tokenize([texts[i] for i in order[start : start + self.batch_size]])
            predicted = self._scores(encoding).argmax(-1).tolist()
            for row, ids in enumerate(predicted):
                per_char = [ids[position] for position in self._first_tokens(encoding, row).values()]
                tagged += len(per_char)
        return tagged

    @torch.inference_mode()
    def predict_one(self, text: str) -> list:
        encoding = self._tokenize([text])
        predicted = self._scores(encoding).argmax(-1)[0].tolist()
        first = self._first_tokens(encoding, 0)
        return tags_to_entities([self.tags[predicted[first[i]]] if i in first else "O" for i in range(len(text))])

    def training(self, sentences: Sequence[Sentence], batches: Sequence[Batch], device: torch.device) -> TrainLoop:
        """The same sentences per batch, tokenised once; labels on each character's first token, -100 elsewhere."""
        tag_index = {t: i for i, t in enumerate(self.tags)}
        prepared, chars = [], 0
        for batch in batches:
            rows = [sentences[i] for i in batch.index]
            encoding = self._tokenize([s.chars for s in rows])
            labels = torch.full(encoding["input_ids"].shape, -100, dtype=torch.long)
            for r, sentence in enumerate(rows):
                for char, position in self._first_tokens(encoding, r).items():
                    labels[r, position] = tag_index[sentence.tags[char]]
            chars += int((labels != -100).sum())
            prepared.append({**encoding.to(device), "labels": labels.to(device)})
        losses = [lambda inputs=inputs: self.model(**inputs).loss for inputs in prepared]
        return TrainLoop(self.model, losses, chars, device)


# -- measuring ----------------------------------------------------------------------------------


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=AUTOCAST[precision]) if precision in AUTOCAST else nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - started


@contextmanager
def _count_flops(model: torch.nn.Module) -> Iterator[Callable[[], int]]:
    """FLOPs of everything run inside; torch's counter skips LSTMs and oneDNN's linear, so they are added by formula."""
    lstm_flops = [0]

    def count_lstm(module: torch.nn.LSTM, args, _output) -> None:
        x = args[0]
        tokens = x.data.shape[0] if isinstance(x, PackedSequence) else x.shape[0] * x.shape[1]
        width, directions = module.input_size, 2 if module.bidirectional else 1
        for _ in range(module.num_layers):  # 4 gates: [x; h] @ W per token and direction
            lstm_flops[0] += tokens * directions * 2 * 4 * module.hidden_size * (width + module.hidden_size)
            width = directions * module.hidden_size

    def linear_pointwise(x_shape, w_shape, *_args, **_kwargs) -> int:  # oneDNN's linear (predict.fast_linear)
        return 2 * math.prod(x_shape) * w_shape[0]

    hooks = [m.register_forward_hook(count_lstm) for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.mkldnn._linear_pointwise: linear_pointwise})
    try:
        with counter:
            yield lambda: counter.get_total_flops() + lstm_flops[0]
    finally:
        for hook in hooks:
            hook.remove()


def matmul_gflops(device: torch.device, dtype: torch.dtype, size: int, fast: bool = True, repeats: int = 3) -> float:
    """GFLOP/s of a ``size`` x ``size`` matrix product (best of ``repeats``): the practical limit for these models.

    ``fast``: through the GEMM that acmtl's inference uses (:func:`predict.fast_linear`), else torch's default.
    """
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    with torch.inference_mode(), fast_linear(device) if fast else nullcontext():
        F.linear(a, b)
        return 2 * size**3 / min(_seconds(lambda: F.linear(a, b), device) for _ in range(repeats)) / 1e9


def _latency_ms(fn: Callable[[], object], calls: int, device: torch.device) -> dict[str, float]:
    for _ in range(5):
        fn()
    times = sorted(1000 * _seconds(fn, device) for _ in range(calls))
    pick = lambda q: times[min(len(times) - 1, round(q * (len(times) - 1)))]  # nearest rank
    return {"p50": pick(0.5), "p95": pick(0.95)}


def choose_threads(probe: Callable[[], object]) -> dict:
    """The CPU thread count at which ``probe`` runs fastest (tried: powers of two up to the usable cores)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    counts = sorted({2**i for i in range(usable.bit_length()) if 2**i <= usable} | {usable})
    tried = {}
    for n in counts:
        torch.set_num_threads(n)
        probe()  # the first pass at a new thread count is slower
        tried[n] = _seconds(probe, torch.device("cpu"))
    best = min(tried, key=tried.get)
    torch.set_num_threads(best)
    return {"threads": best, "probe_seconds": {str(n): round(s, 4) for n, s in tried.items()}}


def machine_info(device: torch.device) -> dict:
    """The machine kind the numbers belong to: CPU model and ISA flags, native bf16, GPU, library versions."""
    info = {"device": device.type, "torch": torch.__version__, "transformers": transformers.__version__,
            **onnx_backends.versions(), "cpu_count": os.cpu_count(), "bf16_native": bf16_supported(device)}
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), None)
    flags = set(text.split())
    info.update(cpu=model, cpu_flags=[f for f in CPU_FLAGS if f in flags],
                cpu_capability=torch.backends.cpu.get_cpu_capability())
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    gpu_capability=".".join(map(str, torch.cuda.get_device_capability(device))))
    return info


# -- the run ------------------------------------------------------------------------------------


def _build_pipelines(tags: list[str], device: torch.device, batch_size: int) -> dict:
    """Every model of :data:`MODELS`; the like-for-like reference only where acmtl's GEMM choice differs."""
    torch.manual_seed(0)
    pipelines = {}
    for name, arch, overrides, pretrained in (
        ("acmtl", "acmtl", {}, True),
        ("acmtl_bert_base", "acmtl", {"encoder_config": bert_base_config().to_dict()}, False),
        ("encoder_crf", "encoder_crf", {}, True),
        ("bilstm_crf", "bilstm_crf", {}, True),
    ):
        model, tokenizer = build_model(ModelConfig.for_architecture(arch, tags, **overrides), pretrained=pretrained)
        pipelines[name] = ACMTLPipeline(model, tokenizer, device, batch_size)
    pipelines["reference"] = ReferencePipeline(DEFAULT_ENCODER, tags, device, batch_size)
    if device.type == "cpu" and cpu_linear_backend() != "blas":
        pipelines["reference_fast_gemm"] = ReferencePipeline(DEFAULT_ENCODER, tags, device, batch_size, fast_gemm=True)
    return {name: pipelines[name] for name in MODELS if name in pipelines}


def run_benchmark(device: str = "cpu", *, quick: bool = False, threads: int | None = None,
                  backends: Sequence[str] | None = None, log: Callable[[str], None] = lambda message: None) -> dict:
    """Measure every model under :data:`FULL` (or :data:`QUICK`) and return the JSON-able results.

    ``backends``: inference backends for AC-MTL and the reference besides eager (default: every one installed;
    the ONNX ones run on the CPU only)."""
    protocol = QUICK if quick else FULL
    dev = torch.device(device)
    old_threads, verbosity = torch.get_num_threads(), transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # the reference's "newly initialized classifier" notice
    transformers.utils.logging.disable_progress_bar()
    try:
        return _run(protocol, dev, threads, backends, log)
    finally:
        release_memory()  # the models were _run's: the notebook's next cells get their memory back
        torch.set_num_threads(old_threads)
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _run(protocol: Protocol, device: torch.device, threads: int | None, backends: Sequence[str] | None,
         log: Callable[[str], None]) -> dict:
    corpus = load_corpus("msra")
    tags = tag_names(corpus.types)
    texts = [s.chars for s in corpus.splits["test"][:: protocol.sample_every]]
    precisions = ["fp32"] + (["fp16"] if device.type == "cuda" else []) + (["bf16"] if bf16_supported(device) else [])
    backends = [b for b in (backends or onnx_backends.available_backends()) if b != "eager"]
    if backends and device.type != "cpu":
        log(f"backends {', '.join(backends)} run on the CPU only (onnxruntime's CPU build): not measured on {device}")
        backends = []
    log(f"building models; {len(texts)} test sentences, {sum(map(len, texts))} characters")
    pipelines = _build_pipelines(tags, device, protocol.batch_size)

    machine = machine_info(device)
    if device.type == "cpu":
        if threads:
            torch.set_num_threads(threads)
            machine["threads"] = threads
        else:
            machine |= choose_threads(lambda: pipelines["acmtl"].infer(texts[: protocol.batch_size]))
        machine["cpu_linear_backend"] = cpu_linear_backend()
        log(f"{machine['threads']} CPU threads, fp32 linear layers via {machine['cpu_linear_backend']}")
    else:
        machine["threads"] = torch.get_num_threads()

    on_backends = {}
    for backend in backends:
        log(f"backend {backend}: exporting AC-MTL and the reference (cached after the first run)")
        acmtl = pipelines["acmtl"]
        on_backends[backend, "acmtl"] = ACMTLPipeline(
            acmtl.model, acmtl.tokenizer, device, protocol.batch_size,
            network=onnx_backends.acmtl_emissions(acmtl.model, backend, threads=machine["threads"]))
        on_backends[backend, "reference"] = pipelines["reference"].on_backend(backend, machine["threads"])

    results = {name: {"label": MODELS[name], "params": pipe.params()} for name, pipe in pipelines.items()}
    matmul, matmul_range, by_backend = _time_inference(pipelines, results, texts, precisions, protocol, device, log,
                                                       on_backends)
    log("latency")
    text = next(s.text for s in corpus.splits["test"] if len(s.chars) >= protocol.latency_chars)
    for name in ("acmtl", "reference"):
        results[name]["latency_ms"] = {}
        for precision in precisions:
            with _autocast(device, precision):
                results[name]["latency_ms"][precision] = _latency_ms(
                    lambda name=name: pipelines[name].predict_one(text[: protocol.latency_chars]),
                    protocol.latency_calls, device)
    log("training")
    on_backends.clear()  # training times TRAINED alone: the sessions and the other models go first (memory)
    for name in set(pipelines) - set(TRAINED):
        del pipelines[name]
    release_memory()
    train_sentences = [s for s in corpus.splits["train"][:: protocol.sample_every] if len(s.chars) <= MAX_LEN]
    _time_training(pipelines, results, train_sentences, tags, precisions, protocol, device)

    ratios, targets = compare(results, precisions, by_backend, on_gpu=device.type == "cuda")
    return {"protocol": asdict(protocol) | {"mode": "quick" if protocol is QUICK else "full",
                                           "sentences": len(texts), "precisions": precisions,
                                           "backends": ["eager", *backends],
                                           "paper_acmtl_tokens_per_s_v100": PAPER_TOKENS_PER_S},
            "machine": machine, "matmul_gflops": matmul, "matmul_gflops_range": matmul_range, "models": results,
            "backends": by_backend,
            "ratios": ratios, "targets": targets}


def compare(models: dict, precisions: Sequence[str], by_backend: dict | None = None,
            on_gpu: bool = False) -> tuple[dict, dict]:
    """AC-MTL / reference ratios and the :data:`TARGETS` they meet, from the measured ``models``.

    Targets are judged like for like: inference against the reference on acmtl's GEMM library
    (``reference_fast_gemm`` where that differs from a plain user's, else ``reference``), training with
    both on the default BLAS. The inference ratio against the plain reference is kept under its own name.
    ``by_backend`` (backend -> {"acmtl", "reference"} speeds, fp32) adds, per backend and eager, AC-MTL
    against the plain eager fp32 reference and against the reference on the same backend; the fastest
    AC-MTL backend is judged against the plain eager reference (what a transformers user runs).
    ``on_gpu``: also AC-MTL at BERT-base size against the paper's V100 tokens/s (a CPU run is not comparable).
    Each ratio is of medians; ``ratios["ranges"]`` holds, under the same keys, the [min, max] of the per-pass
    ratios (:func:`ratio_range`).
    """
    same_gemm = models["reference_fast_gemm" if "reference_fast_gemm" in models else "reference"]
    acmtl, plain = models["acmtl"], models["reference"]
    inference = lambda model, p: pass_speeds(model["characters"], model["inference_seconds"][p])
    training = lambda model, p: pass_speeds(model["train_characters"], model["train_seconds"][p])
    ratios = {
        "inference_like_for_like": {p: acmtl["tokens_per_s"][p] / same_gemm["tokens_per_s"][p] for p in precisions},
        "inference_vs_plain_reference": {p: acmtl["tokens_per_s"][p] / plain["tokens_per_s"][p] for p in precisions},
        "training_like_for_like": {p: acmtl["train_chars_per_s"][p] / plain["train_chars_per_s"][p]
                                   for p in precisions},
        # At equal hardware efficiency AC-MTL could reach at most this inference ratio.
        "flops_reference_over_acmtl": plain["gflop_per_token"] / acmtl["gflop_per_token"],
    }
    targets = {kind: {"target": goal, "met_like_for_like": {p: ratios[f"{kind}_like_for_like"][p] >= goal
                                                            for p in precisions}}
               for kind, goal in TARGETS.items()}
    targets["inference"]["met_vs_plain_reference"] = {
        p: ratios["inference_vs_plain_reference"][p] >= TARGETS["inference"] for p in precisions}
    speeds = {"eager": (acmtl["tokens_per_s"]["fp32"], same_gemm["tokens_per_s"]["fp32"])} | {
        backend: (m["acmtl"]["tokens_per_s"], m["reference"]["tokens_per_s"])
        for backend, m in (by_backend or {}).items()}
    ratios["inference_by_backend"] = {
        backend: {"vs_eager_reference": ours / plain["tokens_per_s"]["fp32"], "like_for_like": ours / theirs}
        for backend, (ours, theirs) in speeds.items()}
    on_backend = lambda measured: pass_speeds(measured["characters"], measured["inference_seconds"])
    passes = {"eager": (inference(acmtl, "fp32"), inference(same_gemm, "fp32"))} | {
        backend: (on_backend(m["acmtl"]), on_backend(m["reference"])) for backend, m in (by_backend or {}).items()}
    ranges = {
        "inference_like_for_like": {p: ratio_range(inference(acmtl, p), inference(same_gemm, p)) for p in precisions},
        "inference_vs_plain_reference": {p: ratio_range(inference(acmtl, p), inference(plain, p)) for p in precisions},
        "training_like_for_like": {p: ratio_range(training(acmtl, p), training(plain, p)) for p in precisions},
        "inference_by_backend": {backend: {"vs_eager_reference": ratio_range(ours, inference(plain, "fp32")),
                                           "like_for_like": ratio_range(ours, theirs)}
                                 for backend, (ours, theirs) in passes.items()},
    }
    if on_gpu:
        bert_base = models["acmtl_bert_base"]
        ratios["bert_base_vs_paper"] = {p: bert_base["tokens_per_s"][p] / PAPER_TOKENS_PER_S for p in precisions}
        ranges["bert_base_vs_paper"] = {p: [speed / PAPER_TOKENS_PER_S for speed in bert_base["tokens_per_s_range"][p]]
                                        for p in precisions}
    ratios["ranges"] = ranges
    fastest = max(speeds, key=lambda backend: speeds[backend][0])
    targets["inference"]["fastest_backend"] = {"backend": fastest, **ratios["inference_by_backend"][fastest],
                                               "met": ratios["inference_by_backend"][fastest]["vs_eager_reference"]
                                               >= TARGETS["inference"]}
    return ratios, targets


def _time_inference(pipelines: dict, results: dict, texts: list, precisions: list[str], protocol: Protocol,
                    device: torch.device, log: Callable[[str], None],
                    on_backends: dict[tuple[str, str], object]) -> tuple[dict[str, float], dict, dict]:
    """Fill in each model's speed; the matmul peak and ``on_backends`` ((backend, model) -> pipeline, fp32 only)
    are timed in the same rounds. Returns matmul GFLOP/s (median, range) and, per backend and model, characters
    and speed."""
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    cases = [(name, p) for name in pipelines for p in precisions] + [(key, "fp32") for key in on_backends]
    every = pipelines | on_backends
    characters = {}
    log(f"warm-up: one untimed pass of each of {len(cases)} models and precisions")
    for name, precision in cases:  # eager fp32 also counts FLOPs and characters
        pipe = every[name]
        with _autocast(device, precision):
            if name in on_backends:
                characters[name] = pipe.infer(texts)
            elif precision == "fp32":
                with _count_flops(pipe.model) as flops:
                    results[name]["characters"] = pipe.infer(texts)
                results[name]["gflop_per_token"] = flops() / results[name]["characters"] / 1e9
            else:
                pipe.infer(texts)
    seconds: dict[tuple, list[float]] = {case: [] for case in cases}
    gemm: dict[str, list[float]] = {p: [] for p in precisions}
    if device.type == "cpu":
        gemm["fp32_default_blas"] = []
    shares: dict[str, list[float]] = {"prepare": [], "viterbi": []}
    for repeat in range(protocol.repeats):
        log(f"timing, pass {repeat + 1} of {protocol.repeats}")
        for key in gemm:
            gemm[key].append(matmul_gflops(device, dtypes.get(key, torch.float32), protocol.matmul_size,
                                           fast=key in dtypes))
        for name, precision in cases:
            with _autocast(device, precision):
                seconds[name, precision].append(_seconds(lambda name=name: every[name].infer(texts), device))
            if (name, precision) == ("acmtl", "fp32"):
                for stage, value in pipelines[name].stage_seconds.items():
                    shares[stage].append(value / seconds[name, precision][-1])
    matmul = {key: statistics.median(values) for key, values in gemm.items()}
    matmul_range = {key: [min(values), max(values)] for key, values in gemm.items()}
    timed = {name: {p: speed_of(r["characters"], seconds[name, p]) for p in precisions} for name, r in results.items()}
    speed = {name: {p: median for p, (median, _) in by_precision.items()} for name, by_precision in timed.items()}
    for name, result in results.items():
        result["inference_seconds"] = {p: seconds[name, p] for p in precisions}  # every timed pass
        result["tokens_per_s"] = speed[name]  # the median pass
        result["tokens_per_s_range"] = {p: spread for p, (_, spread) in timed[name].items()}
        result["vs_reference"] = {p: speed[name][p] / speed["reference"][p] for p in precisions}
        result["fraction_of_matmul_peak"] = {p: speed[name][p] * result["gflop_per_token"] / matmul[p]
                                             for p in precisions}
    results["acmtl"]["time_share"] = {stage: statistics.median(values) for stage, values in shares.items()}
    measured: dict[str, dict] = {}
    for (backend, name), chars in characters.items():
        passes = seconds[(backend, name), "fp32"]
        median, spread = speed_of(chars, passes)
        measured.setdefault(backend, {})[name] = {"characters": chars, "inference_seconds": passes,
                                                  "tokens_per_s": median, "tokens_per_s_range": spread}
    return matmul, matmul_range, measured


def _time_training(pipelines: dict, results: dict, sentences: list[Sentence], tags: list[str],
                   precisions: list[str], protocol: Protocol, device: torch.device) -> None:
    """Training characters/s of :data:`TRAINED` on the same length-bucketed batches."""
    items = encode_sentences(sentences, pipelines["acmtl"].tokenizer, tags)
    batches = training_batches(items, protocol.train_batch_size, seed=0)[: protocol.train_batches]
    loops = {name: pipelines[name].training(sentences, batches, device) for name in TRAINED}
    cases = [(name, p) for name in loops for p in precisions]
    for name, precision in cases:
        loops[name].run(precision)  # warm-up
    seconds: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for _ in range(protocol.train_repeats):
        for name, precision in cases:
            seconds[name, precision].append(
                _seconds(lambda name=name, precision=precision: loops[name].run(precision), device))
    for name, loop in loops.items():
        timed = {p: speed_of(loop.chars, seconds[name, p]) for p in precisions}
        results[name]["train_characters"] = loop.chars
        results[name]["train_seconds"] = {p: seconds[name, p] for p in precisions}  # every timed pass
        results[name]["train_chars_per_s"] = {p: median for p, (median, _) in timed.items()}
        results[name]["train_chars_per_s_range"] = {p: spread for p, (_, spread) in timed.items()}


def _span(low: float, high: float, digits: int = 0) -> str:
    """A range of timed passes, as printed: 2,410-2,630 (speeds) or 0.85-0.95 (ratios)."""
    return f"{low:,.{digits}f}-{high:,.{digits}f}"


def format_table(results: dict) -> str:
    """The results as plain-text tables, the ratios and targets below them: each speed and ratio the median of the
    timed passes, with their range."""
    precisions, machine, ratios = results["protocol"]["precisions"], results["machine"], results["ratios"]
    models, ranges = results["models"], ratios["ranges"]
    gemm = f", fp32 linear layers via {machine['cpu_linear_backend']}" if "cpu_linear_backend" in machine else ""
    lines = [f"device: {machine.get('gpu') or machine.get('cpu')} ({machine['device']}), {machine['threads']} threads"
             f"{gemm}; CPU flags: {' '.join(machine['cpu_flags']) or '-'}; bf16 native: {machine['bf16_native']}",
             f"torch {machine['torch']}, onnxruntime {machine.get('onnxruntime') or '-'}; "
             + "matmul: " + ", ".join(f"{p} {g:,.0f} GFLOP/s" for p, g in results["matmul_gflops"].items()),
             f"{results['protocol']['sentences']} MSRA test sentences ({results['protocol']['mode']} protocol); "
             f"the paper: {PAPER_TOKENS_PER_S:,.0f} tokens/s for AC-MTL on a V100",
             f"each speed and ratio: the median of {results['protocol']['repeats']} timed passes (training: "
             f"{results['protocol']['train_repeats']}) after a warm-up, the models interleaved; beside it the range "
             "of the passes", ""]
    head = f"{'inference':<52}{'params':>12}{'GFLOP/tok':>10}" + "".join(
        f"{p + ' tok/s':>12}{'range':>14}{'peak':>6}" for p in precisions)
    lines += [head, "-" * len(head)]
    for result in models.values():
        lines.append(f"{result['label']:<52}{result['params']['total']:>12,}{result['gflop_per_token']:>10.3f}"
                     + "".join(f"{result['tokens_per_s'][p]:>12,.0f}{_span(*result['tokens_per_s_range'][p]):>14}"
                               f"{100 * result['fraction_of_matmul_peak'][p]:>5.0f}%" for p in precisions))
    head = f"\n{'training chars/s; latency of one sentence (ms)':<52}" + "".join(
        f"{p + ' train':>12}{'range':>14}{p + ' p50':>10}{p + ' p95':>10}" for p in precisions)
    lines += [head, "-" * len(head.strip())]
    for name in TRAINED:
        result = models[name]
        latency = result.get("latency_ms")  # measured for AC-MTL and the reference only
        lines.append(f"{result['label']:<52}" + "".join(
            f"{result['train_chars_per_s'][p]:>12,.0f}{_span(*result['train_chars_per_s_range'][p]):>14}"
            + (f"{latency[p]['p50']:>10.1f}{latency[p]['p95']:>10.1f}" if latency else f"{'-':>10}{'-':>10}")
            for p in precisions))
    share = models["acmtl"]["time_share"]
    lines += ["", f"AC-MTL inference time: ids + pinyin {100 * share['prepare']:.1f}%, "
                  f"Viterbi {100 * share['viterbi']:.1f}%, the rest the network"]
    head = (f"\n{'inference backends (fp32 activations)':<40}{'AC-MTL tok/s':>14}{'reference tok/s':>17}"
            f"{'vs eager reference':>26}{'like for like':>24}")
    lines += [head, "-" * len(head.strip())]
    eager = {"acmtl": models["acmtl"], "reference": models.get("reference_fast_gemm", models["reference"])}
    speeds = {"eager": {name: m["tokens_per_s"]["fp32"] for name, m in eager.items()}} | {
        backend: {name: m["tokens_per_s"] for name, m in rows.items()} for backend, rows in results["backends"].items()}
    for backend, ratio in ratios["inference_by_backend"].items():
        speed, spread = speeds[backend], ranges["inference_by_backend"][backend]
        lines.append(f"{backend:<40}{speed['acmtl']:>14,.0f}{speed['reference']:>17,.0f}"
                     + "".join(f"{ratio[key]:>12.3f} ({_span(*spread[key], 2)})" for key in ratio))
    if "bert_base_vs_paper" in ratios:
        lines.append("AC-MTL at BERT-base size / the paper's V100 tokens/s: " + ", ".join(
            f"{p} {r:.2f}x ({_span(*ranges['bert_base_vs_paper'][p], 2)})"
            for p, r in ratios["bert_base_vs_paper"].items()))
    targets = results["targets"]

    def judged(kind: str, met: dict, goal: float) -> str:
        return f"(target >= {goal}): " + ", ".join(  # 0.797 must not read 0.80
            f"{p} {ratios[kind][p]:.3f} (range {_span(*ranges[kind][p], 3)}, {'met' if met[p] else 'missed'})"
            for p in precisions)

    plain_differs = "reference_fast_gemm" in models  # else the plain reference runs on acmtl's library already
    lines.append("targets are judged like for like: both models at the same precision on the same GEMM library"
                 + ("; 'as a plain user runs it' keeps the reference on torch's default BLAS" if plain_differs else ""))
    for kind, target in targets.items():
        lines.append(f"{kind} AC-MTL / reference, like for like "
                     + judged(f"{kind}_like_for_like", target["met_like_for_like"], target["target"]))
    if plain_differs:
        lines.append("inference AC-MTL / reference as a plain user runs it "
                     + judged("inference_vs_plain_reference", targets["inference"]["met_vs_plain_reference"],
                              targets["inference"]["target"]))
    fastest = targets["inference"]["fastest_backend"]
    lines.append(f"inference AC-MTL on its fastest backend ({fastest['backend']}) / the reference in eager fp32 "
                 f"(target >= {targets['inference']['target']}): {fastest['vs_eager_reference']:.3f} "
                 f"({'met' if fastest['met'] else 'missed'}); like for like on {fastest['backend']}: "
                 f"{fastest['like_for_like']:.3f}")
    lines.append(f"FLOPs per token, reference / AC-MTL: {ratios['flops_reference_over_acmtl']:.2f} "
                 "(the inference ratio at equal hardware efficiency)")
    return "\n".join(lines)


def compare_backends(model_dir: str | Path, backends: Sequence[str] | None = None, *, sample_every: int = 1,
                     batch_size: int = 32, log: Callable[[str], None] = lambda message: None) -> dict:
    """Entity F1 of a trained MSRA model on MSRA's official test set per backend, against eager.

    ``model_dir``: a run directory or a saved model; ``sample_every``: every n-th test sentence (1: all).
    Per backend: entity P/R/F1, ``f1_change_points`` (F1 minus eager's, in points) and ``identical_sentences``
    (the share of sentences tagged exactly as eager tags them). No timing: one pass over the test set would be a
    timing without its spread; :func:`run_benchmark` times each backend (median and range of interleaved passes).
    ONNX exports are cached beside the weights (``<model>/onnx/``), as ``predict --backend`` does.
    """
    directory = Path(model_dir)
    directory = directory / "model" if (directory / "model").is_dir() else directory
    model, tokenizer = load_pretrained(directory)
    sentences = load_corpus("msra").splits["test"][::sample_every]
    items = [encode(s.chars, tokenizer) for s in sentences]
    gold = [list(s.tags) for s in sentences]
    measured, paths = {}, {}
    for backend in ["eager", *[b for b in (backends or onnx_backends.available_backends()) if b != "eager"]]:
        network = onnx_backends.acmtl_emissions(model, backend, cache_dir=directory / "onnx")
        log(f"{backend}: tagging {len(items)} sentences")
        paths[backend] = tag_encoded(model, items, network=network, batch_size=batch_size)
        scores = score(gold, [[model.cfg.tags[i] for i in path] for path in paths[backend]])
        measured[backend] = {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1}
    for backend, result in measured.items():
        result["f1_change_points"] = 100 * (result["f1"] - measured["eager"]["f1"])
        result["identical_sentences"] = statistics.mean(a == b for a, b in zip(paths[backend], paths["eager"]))
    return {"model": str(directory), "sentences": len(sentences), "sample_every": sample_every,
            "threads": torch.get_num_threads(), "backends": measured}
