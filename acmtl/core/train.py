"""Training: AdamW, early stopping on dev F1, atomic checkpoints, ``--resume``, DDP.

One call of :func:`train` writes into ``out_dir``::

    model/            the best model so far (by dev F1), loadable with ``from_pretrained``
    checkpoint/       everything needed to resume after the last finished epoch (removed at the end)
    curve.json        per epoch: training loss and its parts (loss_ner, ...), dev F1, seconds of training and
                      of scoring, characters/s (and test F1 with ``test_curve``)
    predictions.json  the best model's tags on every split scored (one string per sentence)
    metrics.json      final scores of the best model on every split given (written last)

Scoring (dev F1 per epoch, the best model on every split at the end) runs under the training
precision: bf16 where the hardware has it, 1.7x faster than fp32 on the CPU, F1 within 0.02 on
MSRA's full test set. The test F1 per epoch is recorded only when asked (``test_curve``, for
the robustness figure, Figure 8); model selection and early stopping look at dev F1 alone.

A run killed at any point resumes from the end of the last finished epoch and, because each
epoch's batch order depends only on (seed, epoch) and the random-number state is checkpointed,
ends with exactly the metrics of an uninterrupted run.

Data-parallel training: start with ``torchrun --nproc_per_node N -m acmtl train ...``; each
process takes every N-th batch, gradients are averaged by DistributedDataParallel (gloo on CPU,
nccl on GPU), and process 0 evaluates and writes.

Determinism: on the CPU the same seed gives bit-identical metrics for a fixed thread count
(tested). On a GPU the seed still fixes the data order, the initial weights and the dropout
masks, but cuBLAS may choose different algorithms between runs, some backward kernels (the
gradient of ``gather`` in the CRF likelihood) add with atomics in no fixed order, and fused
attention is not deterministic backwards; bf16 magnifies this. Differences are at rounding
level but can move the epoch early stopping picks. ``torch.use_deterministic_algorithms(True)``
with ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` and fp32 makes a run repeat on the same GPU and
software stack, at some cost in speed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from tqdm.std import tqdm

from acmtl.core.checkpoint import build_model, load_pretrained, save_pretrained
from acmtl.core.encoders import CharTokenizer
from acmtl.core.evaluate import Scores, score
from acmtl.core.features import Encoded, encode_sentences, training_batches
from acmtl.core.model import ACMTL, ModelConfig
from acmtl.core.predict import MAX_LEN, tag_encoded
from acmtl.data.conll import Sentence
from acmtl.data.fetch import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 30
    # Stop after this many epochs without a better dev F1, counted once dev F1 is above 0: a BiLSTM on
    # 140 sentences finds no entity for its first ~10 epochs, which is slow learning, not overfitting.
    patience: int = 5
    batch_size: int = 32
    encoder_lr: float = 5e-5  # the paper's learning rate, for the pre-trained encoder
    head_lr: float = 1e-3  # new layers (pinyin, attention, CNN, heads, CRF) start from scratch
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of steps with a linearly rising learning rate
    grad_clip: float = 1.0
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 only where the hardware has it
    max_len: int = MAX_LEN
    eval_batch_size: int = 64
    test_curve: bool = False  # also score the test split after every epoch (Figure 8's curves); never selects


@dataclass
class TrainerState:
    epoch: int = 0  # epochs finished
    best_f1: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    curve: list[dict] = field(default_factory=list)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 only: CUDA with bf16, or a CPU with AMX / AVX512-BF16 (elsewhere autocast is far slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "auto":
        return bf16_supported(device)
    if precision == "bf16" and not bf16_supported(device):
        log.warning("bf16 requested, but %s has no native bf16: expect it to be much slower than fp32", device)
    return precision == "bf16"


def tag_names(types: list[str] | tuple[str, ...]) -> list[str]:
    """The BIOES tag set for ``types``: "O" then B/I/E/S of each type."""
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in "BIES"]


def split_long(items: list[Encoded], tags: list[str], max_len: int) -> list[Encoded]:
    """Cut training sentences longer than ``max_len`` between entities, never silently truncate."""
    out, cut = [], 0
    closes = [t[0] in "OES" for t in tags]
    for item in items:
        start = 0
        cut += len(item) > max_len
        while len(item) - start > max_len:
            end = start + max_len
            while end > start and not closes[item.tag_ids[end - 1]]:
                end -= 1  # step back until the cut does not split an entity
            if end == start:
                end = start + max_len  # one entity longer than max_len: it has to be split
            out.append(item.window(start, end))
            start = end
        out.append(item.window(start, len(item)))
    if cut:
        log.warning("%d training sentences were longer than %d characters and were cut into windows", cut, max_len)
    return out


def gold_and_predicted(model: ACMTL, items: list[Encoded], batch_size: int = 64, *,
                       bf16: bool = False, progress: str | None = None) -> tuple[list, list]:
    """Gold and predicted tag strings of labelled ``items``; ``bf16``: the forward pass under bf16 autocast;
    ``progress``: the label of a progress bar, if one is wanted."""
    tags = model.cfg.tags
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        paths = tag_encoded(model, items, batch_size=batch_size, progress=progress)
    return [[tags[i] for i in item.tag_ids] for item in items], [[tags[i] for i in p] for p in paths]


def evaluate_items(model: ACMTL, items: list[Encoded], batch_size: int = 64, *, bf16: bool = False) -> Scores:
    return score(*gold_and_predicted(model, items, batch_size, bf16=bf16))


# -- checkpoints --------------------------------------------------------------------------------


def _save_checkpoint(directory: Path, model: ACMTL, optimizer, scheduler, state: TrainerState) -> None:
    """Write the resume state to ``checkpoint.tmp`` and swap it in; a crash leaves the old one."""
    tmp, old = directory.with_name("checkpoint.tmp"), directory.with_name("checkpoint.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    opt = optimizer.state_dict()
    tensors = {f"{pid}.{name}": value for pid, st in opt["state"].items() for name, value in st.items()}
    tensors["torch_rng_state"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    meta = {"trainer": asdict(state), "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict()}
    atomic_write_bytes(tmp / "state.json", json.dumps(meta).encode())
    shutil.rmtree(old, ignore_errors=True)  # left over if a run was killed while removing it
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(directory: Path, model: ACMTL, optimizer, scheduler) -> TrainerState:
    if not directory.exists() and directory.with_name("checkpoint.old").exists():
        directory = directory.with_name("checkpoint.old")  # killed between the two renames
    meta = json.loads((directory / "state.json").read_text())
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    tensors = load_file(str(directory / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("torch_rng_state"))
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    return TrainerState(**meta["trainer"])


def _has_checkpoint(directory: Path) -> bool:
    return any((d / "state.json").exists() for d in (directory, directory.with_name("checkpoint.old")))


# -- set-up ------------------------------------------------------------------------------------


def warmup_then_linear_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The learning-rate multiplier by optimiser step (0-based), for ``LambdaLR``."""

    def multiplier(step: int) -> float:
        # warm-up: rise linearly to the full rate, so the first updates, driven by the randomly
        # initialised new layers, stay small for the pre-trained encoder
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        # decay: fall linearly from the full rate to 0 at the last step
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return multiplier


def _optimizer(model: ACMTL, cfg: TrainConfig, steps: int):
    """AdamW with two learning rates (encoder / new layers), no decay on biases and norms; linear warm-up and decay.

    The fused kernel (one pass over each parameter tensor, as a transformers ``Trainer`` uses by default) does the
    same update as the per-tensor loop, 5x faster on the CPU; it needs the model on its device already."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        is_encoder = name.startswith("encoder.") and model.cfg.encoder != "bilstm"
        decay = p.ndim > 1 and "norm" not in name.lower()
        groups.setdefault((is_encoder, decay), []).append(p)
    optimizer = torch.optim.AdamW([
        {"params": ps, "lr": cfg.encoder_lr if enc else cfg.head_lr,
         "weight_decay": cfg.weight_decay if decay else 0.0}
        for (enc, decay), ps in sorted(groups.items())
    ], fused=True)
    schedule = warmup_then_linear_decay(max(1, int(cfg.warmup * steps)), steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


@dataclass
class _Run:
    """What the phases of one call of :func:`train` share; built by :func:`_set_up`."""

    cfg: TrainConfig
    out_dir: Path
    model: ACMTL
    tokenizer: CharTokenizer
    trainee: torch.nn.Module  # the model, wrapped by DistributedDataParallel when there are several processes
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    encoded: dict[str, list[Encoded]]  # every split
    train_items: list[Encoded]  # the training split, long sentences cut into windows
    batches_per_epoch: int  # per process
    device: torch.device
    bf16: bool
    world: int  # number of processes
    rank: int  # this process; 0 evaluates and writes
    state: TrainerState
    best_state: dict[str, torch.Tensor] | None = None  # best weights not yet written to model/
    last_checkpoint: float = 0.0  # time.perf_counter() of the last resume checkpoint


def _join_processes(device: str | None) -> tuple[torch.device, int, int]:
    """This process's device, the number of processes and its rank; under torchrun, join the process group."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if world > 1:
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev, world, rank


def _set_up(model_cfg: ModelConfig, cfg: TrainConfig, data: dict[str, list[Sentence]], out_dir: Path, *,
            resume: bool, device: str | None) -> _Run:
    """Seed, build the model, encode every split, make the optimiser; continue from the checkpoint if asked."""
    dev, world, rank = _join_processes(device)
    set_seed(cfg.seed)
    model, tokenizer = build_model(model_cfg)
    model.to(dev)
    tags = model.cfg.tags
    encoded = {name: encode_sentences(sents, tokenizer, tags) for name, sents in data.items()}
    train_items = split_long(encoded["train"], tags, cfg.max_len)
    batches_per_epoch = max(1, -(-len(train_items) // cfg.batch_size) // world)
    optimizer, scheduler = _optimizer(model, cfg, cfg.epochs * batches_per_epoch)
    state = TrainerState()
    if resume and _has_checkpoint(out_dir / "checkpoint"):
        state = _load_checkpoint(out_dir / "checkpoint", model, optimizer, scheduler)
        log.info("resuming %s after epoch %d", out_dir, state.epoch)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    trainee = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    return _Run(cfg, out_dir, model, tokenizer, trainee, optimizer, scheduler, encoded, train_items,
                batches_per_epoch, dev, use_bf16(cfg.precision, dev), world, rank, state,
                last_checkpoint=time.perf_counter())


# -- the loop -----------------------------------------------------------------------------------


def _train_epoch(run: _Run, progress: bool) -> dict[str, float]:
    """One pass over this process's share of the batches -> mean loss and mean parts, seconds, characters/s."""
    cfg, epoch = run.cfg, run.state.epoch
    run.model.train()
    batches = training_batches(run.train_items, cfg.batch_size, seed=cfg.seed * 100_003 + epoch)
    batches = (batches * run.world)[run.rank::run.world][:run.batches_per_epoch]  # equal share per process
    started, sums, chars = time.perf_counter(), Counter(), 0  # sums: "loss" and "loss_<part>" over batches
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress or run.rank != 0, leave=False)
    for batch in bar:
        batch = batch.to(run.device)
        # forward: the loss and its parts, in bf16 where the hardware has it
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.bf16):
            out = run.trainee(*batch.inputs, batch.tag_ids)
        # backward: the gradients (DDP averages them over the processes)
        run.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        # clip: rescale the gradient to norm at most grad_clip, against spikes from the fresh layers
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        # step: the AdamW update, then the learning rate for the next step
        run.optimizer.step()
        run.scheduler.step()
        # bookkeeping: the loss and its parts for the curve, characters for the speed
        losses = {"loss": out.loss.item(), **{f"loss_{name}": v.item() for name, v in out.parts().items()}}
        sums.update(losses)
        chars += int(batch.mask.sum())
        bar.set_postfix(loss=f"{losses['loss']:.3f}")
    seconds = time.perf_counter() - started
    return {**{key: total / max(1, len(batches)) for key, total in sums.items()},
            "seconds": seconds, "train_chars_per_s": chars * run.world / seconds}


def _record_epoch(run: _Run, row: dict, checkpoint_every: float, progress: bool) -> None:
    """Process 0, after an epoch: score dev (and test), keep the best weights, checkpoint, write the curve."""
    state, cfg = run.state, run.cfg
    started = time.perf_counter()
    dev_scores = evaluate_items(run.model, run.encoded["dev"], cfg.eval_batch_size, bf16=run.bf16)
    row["dev_f1"] = dev_scores.f1
    if cfg.test_curve and "test" in run.encoded:  # recorded for Figure 8, never used to select
        row["test_f1"] = evaluate_items(run.model, run.encoded["test"], cfg.eval_batch_size, bf16=run.bf16).f1
    row["score_seconds"] = time.perf_counter() - started
    state.curve.append(row)
    if dev_scores.f1 > state.best_f1:
        state.best_f1, state.best_epoch, state.bad_epochs = dev_scores.f1, row["epoch"], 0
        run.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    elif state.best_f1 > 0:  # patience starts once a dev entity is found: F1 0 is "not learning yet"
        state.bad_epochs += 1
    state.epoch = row["epoch"]
    if time.perf_counter() - run.last_checkpoint >= checkpoint_every:
        if run.best_state is not None:  # model/ first: the checkpoint must never be ahead of it
            save_pretrained(run.model, run.tokenizer, run.out_dir / "model", run.best_state)
            run.best_state = None
        _save_checkpoint(run.out_dir / "checkpoint", run.model, run.optimizer, run.scheduler, state)
        run.last_checkpoint = time.perf_counter()
    atomic_write_bytes(run.out_dir / "curve.json", json.dumps(state.curve, indent=1).encode())
    if progress:
        tqdm.write(f"epoch {row['epoch']}: loss {row['loss']:.4f}  dev F1 {dev_scores.f1:.4f}  "
                   f"({row['seconds']:.1f} s, {row['train_chars_per_s']:.0f} chars/s)")


# -- final scoring ------------------------------------------------------------------------------


def _warn_if_nothing_learned(state: TrainerState) -> None:
    """A model that never found a dev entity tags nothing: say why, rather than hand over an F1 of 0 in silence."""
    if state.best_f1 == 0:
        log.warning("dev F1 stayed 0 in all %d epochs: the model has learned no entity yet and will tag nothing; "
                    "train for more epochs or on more sentences", state.epoch)


def _final_scores(run: _Run, train_sentences: int, progress: bool) -> dict:
    """Process 0: score the best model on every split but train; write predictions.json, then metrics.json.
    ``progress``: a bar per split (scoring a 4,620-sentence test set takes minutes on a CPU)."""
    state = run.state
    if run.best_state is not None:
        save_pretrained(run.model, run.tokenizer, run.out_dir / "model", run.best_state)
    started = time.perf_counter()
    best, _ = load_pretrained(run.out_dir / "model")
    best.to(run.device)
    metrics = {"best_epoch": state.best_epoch, "epochs_run": state.epoch, "device": str(run.device),
               "precision": "bf16" if run.bf16 else "fp32",  # of training and scoring: what "auto" resolved to here
               "threads": torch.get_num_threads(),  # float sums, so the numbers, depend on it: bit-identical only alike
               "train_seconds": sum(r["seconds"] for r in state.curve),
               "train_sentences": train_sentences}
    predictions = {}  # the best model's tags on every scored split: paired comparisons need them
    for name, items in run.encoded.items():
        if name != "train":
            gold, predicted = gold_and_predicted(best, items, run.cfg.eval_batch_size, bf16=run.bf16,
                                                 progress=f"scoring epoch {state.best_epoch} on {name}" if progress
                                                 else None)
            metrics[name] = score(gold, predicted).to_dict()
            predictions[name] = [" ".join(tags) for tags in predicted]
    # what the run cost besides the training loop: scoring after every epoch, then the best model on every split
    metrics["score_seconds"] = sum(r["score_seconds"] for r in state.curve) + time.perf_counter() - started
    atomic_write_bytes(run.out_dir / "predictions.json", json.dumps(predictions).encode())
    atomic_write_bytes(run.out_dir / "metrics.json", json.dumps(metrics, indent=2).encode())  # last: the run is done
    for leftover in ("checkpoint", "checkpoint.old", "checkpoint.tmp"):
        shutil.rmtree(run.out_dir / leftover, ignore_errors=True)
    return metrics


def train(model_cfg: ModelConfig, cfg: TrainConfig, data: dict[str, list[Sentence]], out_dir: str | Path, *,
          resume: bool = False, progress: bool = True, device: str | None = None,
          checkpoint_every: float = 60.0, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train on ``data["train"]``, select on ``data["dev"]``; score the best model on every split.

    The resume checkpoint (weights, optimizer, random state: three times the model's size) is
    written at the end of an epoch once ``checkpoint_every`` seconds have passed since the last
    one, so small runs do not spend their time writing; 0 writes one after every epoch.
    ``on_epoch`` sees each epoch's curve row (dev F1 among it) once it is recorded; an exception it
    raises (a tuner pruning the trial) stops training and leaves the run to be resumed.
    """
    run = _set_up(model_cfg, cfg, data, Path(out_dir), resume=resume, device=device)
    while run.state.epoch < cfg.epochs and run.state.bad_epochs < cfg.patience:
        row = {"epoch": run.state.epoch + 1, **_train_epoch(run, progress)}
        stop = torch.zeros(1)
        if run.rank == 0:
            _record_epoch(run, row, checkpoint_every, progress)
            stop[0] = float(run.state.bad_epochs >= cfg.patience)
            if on_epoch is not None:
                on_epoch(row)
        if run.world > 1:  # every process follows process 0's bookkeeping
            dist.broadcast(stop, 0)
            run.state.epoch, run.state.bad_epochs = row["epoch"], int(stop.item()) * cfg.patience
    if run.rank == 0:
        _warn_if_nothing_learned(run.state)
    metrics = _final_scores(run, len(data["train"]), progress) if run.rank == 0 else {}
    if run.world > 1:
        dist.barrier()
    return metrics
