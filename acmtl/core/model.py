"""AC-MTL (Attention-CNN with Multi-Task Learning) and its baselines, in one readable file.

The forward pass, with the paper's equations and the tensor shapes (B sentences, T characters):

    char ids [B, T] ──encoder (Eq. 8)──────────────────────────────► e_c [B, T, H]
    syllable/tone ids [B, T] ──embeddings──────────────────────────► e_p [B, T, P]
    E = concat(e_c, e_p)                                  (Eq. 9)    [B, T, D]   D = H + P
    X = E + PE(pos)                                       (Eq. 5)    [B, T, D]
    S = LN(X + MultiHead(X)), MultiHead = Concat(head_1..head_h) W^O (Eq. 4, 6, 7, 10, 12)
    (identity_start: S = LN(E + MultiHead(E)) with PE in the queries and keys only, and W^O = W_c = 0 at the start)
    C_k = Conv1D_k(S) for k = 3, 5, 7, padding (f-1)/2    (Eq. 1-3)  [B, T, C] each
    S' = W_c [C_3; C_5; C_7]                              (Eq. 11)   [B, T, D]
    S'' = GELU(MaxPool1D(S + S'))          cnn_block="paper"    (Eq. 11 as printed)
    S'' = LN(S + Dropout(GELU(MaxPool1D(S'))))  cnn_block="residual" (ours, chosen on dev F1, see below)
    C = Dropout(S'')                                      (Eq. 14)
    P = C W_ner  (emissions)  ──CRF──► y* = argmax_y Σ A[y_{i-1}, y_i] + P[i, y_i]   (Eq. 13)

Multi-task learning: the attention and CNN layers are shared and each task has its own
output layer (what the paper's Figure 4 shows). The auxiliary labels are derived from the
NER tags, so no extra annotation is needed:
    boundary task: the BIOES position of each character with the type removed (O, B, I, E, S);
    type task:     the entity type of each character (O for none).
    loss = 0.7 · L_ner + 0.15 · L_boundary + 0.15 · L_type
``forward`` returns the loss with its parts (:class:`ACMTLOutput`) and training records each part
per epoch, so the weighting can be watched. The paper says "soft parameter sharing" but describes
shared layers; ``mtl="soft"`` gives the textbook soft sharing instead: each task gets its own
attention + CNN block, tied to the NER block by an L2 penalty on the difference of their weights.

Our choices where the paper is silent, all switchable in :class:`ModelConfig`:
* a residual connection around the attention (``X + MultiHead(X)``): without it a randomly
  initialised attention layer stands between the pre-trained encoder and the CRF;
* max-pooling with stride 1 (``pool_size``): NER needs one vector per character, so pooling keeps
  the length and takes the maximum over each character's neighbourhood;
* the concatenated convolution maps are projected back to D by ``W_c`` so Eq. 11's sum S + S'
  is defined (``cnn_merge="max"`` reads Eq. 3 literally instead: C_max = max(C_3, C_5, C_7));
* where the paper's equation hurts, our default departs from it, and the literal form stays one
  switch away (``cnn_block="paper"``). Eq. 11 max-pools the residual sum S + S', so every dimension
  of character i becomes the maximum over i-1, i, i+1: the encoder's features of each character are
  overwritten by its neighbours' before the CRF sees them (adjacent entities merge, edges slip).
  Ours is a standard residual block that keeps S on the identity path. The tuning study
  (``acmtl.companion.tune``, ``results/tuning_msra_1000_acmtl.csv``), which sampled block, pooling, channels
  and main-task weight on the corpus' own dev split, ranked it first with pooling inside the branch
  (block "residual", pool 3, 256 channels), but it tried pool 1 only at poor learning rates.
  Notebook 03's diagnosis (``results/table3_diagnosis.csv``) trains every contending wiring on the
  same seeds and settings; the default (``Profile.wiring``; the dataclass defaults below: block
  "residual", pool 1) changes only when a contender beats it on the corpus' dev split with a paired
  95 % interval that excludes 0 (``acmtl.companion.diagnosis.choose_wiring``);
* ``identity_start``: the paper says nothing about initialisation. With it, W^O and W_c start at zero
  and the positions reach only the attention's queries and keys, so the added layers start as the
  identity on the pre-trained encoder's features (up to their LayerNorms) instead of as noise on them.
  It is a contender of the diagnosis like any other wiring.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from acmtl.core.crf import ConstrainedCRF
from acmtl.data.pinyin import NUM_SYLLABLES, NUM_TONES

# The format of a saved model's config: bump when an old config would load into a different model.
# (The run cache keys on the training code itself, see acmtl.companion.runs.code_digest.)
MODEL_VERSION = 2

ARCHITECTURES: dict[str, dict] = {
    # Table 2
    "acmtl": dict(use_pinyin=True, use_attention=True, use_cnn=True, mtl="hard"),
    "encoder_crf": dict(use_pinyin=False, use_attention=False, use_cnn=False, mtl="none"),
    "bilstm_crf": dict(encoder="bilstm", use_pinyin=False, use_attention=False, use_cnn=False, mtl="none"),
    # beyond the paper: the baseline with AC-MTL's pinyin features, to isolate their effect (Table 3)
    "encoder_pinyin_crf": dict(use_pinyin=True, use_attention=False, use_cnn=False, mtl="none"),
    # Table 3 (ablation): structure switched off, pinyin kept
    "bert_cnn": dict(use_pinyin=True, use_attention=False, use_cnn=True, mtl="none"),
    "bert_mhsa": dict(use_pinyin=True, use_attention=True, use_cnn=False, mtl="none"),
    "bert_mhsa_cnn": dict(use_pinyin=True, use_attention=True, use_cnn=True, mtl="none"),
    # beyond the paper: true soft parameter sharing
    "acmtl_soft": dict(use_pinyin=True, use_attention=True, use_cnn=True, mtl="soft"),
}


@dataclass
class ModelConfig:
    tags: list[str]  # BIOES tag names, index = tag id; "O" first
    vocab_size: int = 21128
    encoder: str = "m3e-small"  # "bilstm", an embedded name, a local directory or a hub name
    use_pinyin: bool = True
    use_attention: bool = True
    use_cnn: bool = True
    mtl: Literal["none", "hard", "soft"] = "hard"
    main_task_weight: float = 0.7  # the rest is split evenly between the two auxiliary tasks
    soft_sharing_l2: float = 1e-3
    syllable_dim: int = 48
    tone_dim: int = 16
    attention_heads: int = 8
    attention_residual: bool = True
    positions: bool = True  # add sinusoidal positions (Eq. 5) before the attention
    # W^O and W_c start at zero and the positions feed only the attention's queries and keys, so every added layer
    # starts as the identity on the encoder's features (zero-gamma residuals, Goyal et al. 2017; ReZero, 2020);
    # False: random W^O and W_c with X = E + PE on the identity path, as the paper's equations print it
    identity_start: bool = False
    cnn_kernels: tuple[int, ...] = (3, 5, 7)
    cnn_channels: int = 256  # per kernel size
    cnn_merge: Literal["concat", "max"] = "concat"  # [C_3; C_5; C_7], or Eq. 3's C_max = max(C_3, C_5, C_7)
    cnn_block: Literal["paper", "residual"] = "residual"  # LN(S + Dropout(GELU(S'))), or Eq. 11's GELU(MaxPool(S + S'))
    pool_size: int = 1  # max-pooling window, stride 1 (1 = none); "paper" pools S + S', "residual" S' only
    dropout: float = 0.1
    constrained_decoding: bool = True
    # BiLSTM-CRF baseline only
    char_dim: int = 128
    lstm_hidden: int = 256  # per direction
    encoder_config: dict = field(default_factory=dict)  # filled in by the model: how to rebuild the encoder

    @classmethod
    def for_architecture(cls, arch: str, tags: list[str], **overrides) -> ModelConfig:
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
        return cls(tags=list(tags), **{**ARCHITECTURES[arch], **overrides})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"model config has unknown fields {sorted(unknown)}")
        data = dict(data)
        data["cnn_kernels"] = tuple(data.get("cnn_kernels", (3, 5, 7)))
        return cls(**data)

    @property
    def entity_types(self) -> list[str]:
        return sorted({t[2:] for t in self.tags if t != "O"})


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))  (Eq. 5) -> [T, d]."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # [T, 1]
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # [d/2]
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * inv_freq)
    pe[:, 1::2] = torch.cos(pos * inv_freq)[:, : dim // 2]
    return pe


class MultiHeadSelfAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O with head_i = softmax(Q_i K_i^T / sqrt(d_k)) V_i."""

    def __init__(self, dim: int, heads: int, dropout: float, *, zero_output: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)  # W^Q, W^K, W^V in one matrix (Eq. 4)
        self.out = nn.Linear(dim, dim)  # W^O (Eq. 7)
        if zero_output:  # the layer adds nothing until training says what to add (identity start)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool = False, positions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [B, T, D], mask [B, T] -> output [B, T, D] and, if asked, attention weights [B, h, T, T].

        ``positions`` [T, D], if given, is added to the input of the queries and keys only: where to look
        depends on position, what is read (the values) does not."""
        b, t, d = x.shape
        if positions is None:
            q, k, v = self.qkv(x).split(d, dim=2)  # 3 x [B, T, D]
        else:
            w_qk, w_v = self.qkv.weight.split([2 * d, d])
            b_qk, b_v = self.qkv.bias.split([2 * d, d])
            q, k = F.linear(x + positions, w_qk, b_qk).split(d, dim=2)  # 2 x [B, T, D]
            v = F.linear(x, w_v, b_v)  # [B, T, D]
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))  # [B, h, T, d_k]
        keys_on = mask[:, None, None, :]  # [B, 1, 1, T]: no attention to padding
        drop = self.dropout if self.training else 0.0
        if need_weights:  # the explicit form of Eq. 6, for Figure 7 and the walkthrough notebook
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # [B, h, T, T]
            weights = scores.masked_fill(~keys_on, float("-inf")).softmax(dim=-1)
            heads = F.dropout(weights, drop, self.training) @ v  # [B, h, T, d_k]
        else:  # the same computation, fused
            weights = None
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=keys_on, dropout_p=drop)
        heads = heads.transpose(1, 2).reshape(b, t, d)  # Concat(head_1..head_h) (Eq. 12)
        return self.out(heads), weights


class SlidingMax(nn.Module):
    """``nn.MaxPool1d(size, stride=1, padding=size // 2)`` on the last axis: [..., T] -> [..., T].

    Written as pad-and-unfold because ``torch.export`` (the ONNX backend) fixes the length of
    ``max_pool1d``'s input to the example's; this form keeps it dynamic (equal to MaxPool1d: tested)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.size // 2
        return F.pad(x, (half, half), value=float("-inf")).unfold(-1, self.size, 1).amax(dim=-1)


class MultiKernelCNN(nn.Module):
    """C_k = Conv1D_k(S) (Eq. 1-3), S' = W_c merge(C_3, C_5, C_7), fused with S (Eq. 11).

    block="residual": S'' = LN(S + Dropout(GELU(MaxPool1D(S'))))   (pool 1 = no pooling)
    block="paper":    S'' = GELU(MaxPool1D(S + S'))                  (Eq. 11 as printed)
    merge="concat": [C_3; C_5; C_7] (3C channels);  merge="max": C_max = max(C_3, C_5, C_7) (C channels)
    """

    def __init__(self, dim: int, kernels: tuple[int, ...], channels: int, pool_size: int, *,
                 block: str = "paper", merge: str = "concat", dropout: float = 0.0, zero_output: bool = False) -> None:
        super().__init__()
        for f in kernels:
            if f % 2 == 0:
                raise ValueError(f"kernel size {f} must be odd so padding (f-1)/2 keeps the length (Eq. 1)")
        if pool_size < 1 or pool_size % 2 == 0:
            raise ValueError(f"pool size {pool_size} must be odd and at least 1 so pooling keeps the length")
        if block not in ("residual", "paper") or merge not in ("concat", "max"):
            raise ValueError(f"unknown CNN wiring block={block!r}, merge={merge!r}")
        self.block, self.merge = block, merge
        self.convs = nn.ModuleList(nn.Conv1d(dim, channels, f, padding=(f - 1) // 2) for f in kernels)
        merged = channels * len(kernels) if merge == "concat" else channels
        self.project = nn.Linear(merged, dim)  # W_c: merged maps back to D
        if zero_output:  # S' = 0 at the start: the residual block passes S through (identity start)
            nn.init.zeros_(self.project.weight)
            nn.init.zeros_(self.project.bias)
        self.pool = SlidingMax(pool_size) if pool_size > 1 else None
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim) if block == "residual" else None

    def _maxpool(self, x: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        """Max over each character's window [B, T, D] -> [B, T, D]; padding never wins."""
        if self.pool is None:
            return x
        pooled = self.pool(x.masked_fill(~on, float("-inf")).transpose(1, 2)).transpose(1, 2)
        return pooled.masked_fill(~on, 0.0)

    def forward(self, s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """s [B, T, D], mask [B, T] -> S'' [B, T, D] (zero at padding)."""
        on = mask.unsqueeze(2)  # [B, T, 1]
        s = s.masked_fill(~on, 0.0)  # padding must not leak into real characters' windows
        maps = [conv(s.transpose(1, 2)) for conv in self.convs]  # k x [B, C, T]
        merged = torch.cat(maps, dim=1) if self.merge == "concat" else torch.stack(maps).amax(dim=0)
        s_prime = self.project(merged.transpose(1, 2))  # [B, T, D]
        if self.block == "paper":
            return F.gelu(self._maxpool(s + s_prime, on))
        branch = self.dropout(F.gelu(self._maxpool(s_prime, on)))
        return self.norm(s + branch).masked_fill(~on, 0.0)


class AttentionCNNBlock(nn.Module):
    """X = E + PE; S = LN(X + MultiHead(X)); S'' = CNN(S). Either part can be switched off (Table 3).

    identity_start: S = LN(E + MultiHead(E; positions in Q and K only)), W^O = W_c = 0 at the start, so the block
    begins as S'' = LN(LN(E)) and learns what to add to the encoder's features instead of first undoing noise."""

    def __init__(self, cfg: ModelConfig, dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        zero = cfg.identity_start
        self.attention = (MultiHeadSelfAttention(dim, cfg.attention_heads, cfg.dropout, zero_output=zero)
                          if cfg.use_attention else None)
        self.attention_norm = nn.LayerNorm(dim) if cfg.use_attention else None
        self.cnn = (MultiKernelCNN(dim, cfg.cnn_kernels, cfg.cnn_channels, cfg.pool_size, block=cfg.cnn_block,
                                   merge=cfg.cnn_merge, dropout=cfg.dropout, zero_output=zero)
                    if cfg.use_cnn else None)

    def forward(self, e: torch.Tensor, mask: torch.Tensor, need_weights: bool = False):
        s, weights = e, None
        if self.attention is not None:
            pe = sinusoidal_positions(e.shape[1], e.shape[2]).to(e) if self.cfg.positions else None  # Eq. 5
            start = self.cfg.identity_start  # positions steer the attention; the identity path carries E alone
            x = e if pe is None or start else e + pe
            a, weights = self.attention(x, mask, need_weights, positions=pe if start else None)
            s = self.attention_norm(x + a if self.cfg.attention_residual else a)  # Add & Norm
        if self.cnn is not None:
            s = self.cnn(s, mask)
        return s, weights


class TransformerCharEncoder(nn.Module):
    """A BERT-style encoder seeing ``[CLS] c_1 .. c_T [SEP]``, returning one vector per character (Eq. 8)."""

    def __init__(self, model: nn.Module, cls_id: int, sep_id: int) -> None:
        super().__init__()
        if getattr(model, "pooler", None) is not None:
            model.pooler = None  # the sentence pooler is unused for tagging: no dead weights, no DDP unused-grad errors
        self.model, self.cls_id, self.sep_id = model, cls_id, sep_id
        self.dim = model.config.hidden_size

    def forward(self, char_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """char_ids [B, T], mask [B, T] -> [B, T, H]."""
        b, _ = char_ids.shape
        lengths = mask.long().sum(dim=1)  # [B]
        ids = F.pad(char_ids, (1, 1), value=0)  # [B, T+2]
        ids[:, 0] = self.cls_id
        ids[torch.arange(b), lengths + 1] = self.sep_id
        attention = F.pad(mask, (1, 1), value=False)
        attention[:, 0] = True
        attention[torch.arange(b), lengths + 1] = True
        hidden = self.model(input_ids=ids, attention_mask=attention.long()).last_hidden_state  # [B, T+2, H]
        return hidden[:, 1:-1]


class BiLSTMCharEncoder(nn.Module):
    """Character embeddings and a bidirectional LSTM (the BiLSTM-CRF baseline, Huang et al. 2015)."""

    def __init__(self, vocab_size: int, char_dim: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, char_dim, padding_idx=0)
        self.lstm = nn.LSTM(char_dim, hidden, batch_first=True, bidirectional=True)
        self.dim = 2 * hidden

    def forward(self, char_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.long().sum(dim=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(char_ids), lengths,
                                                   batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=char_ids.shape[1])[0]


def boundary_labels(tag_ids: torch.Tensor, tags: list[str]) -> torch.Tensor:
    """Auxiliary task 1: BIOES position without type (O=0, B=1, I=2, E=3, S=4)."""
    table = torch.tensor(["OBIES".index(t[0]) for t in tags], device=tag_ids.device)
    return table[tag_ids]


def type_labels(tag_ids: torch.Tensor, tags: list[str]) -> torch.Tensor:
    """Auxiliary task 2: the entity type of each character (0 = not in an entity)."""
    types = ["O"] + sorted({t[2:] for t in tags if t != "O"})
    table = torch.tensor([types.index("O" if t == "O" else t[2:]) for t in tags], device=tag_ids.device)
    return table[tag_ids]


@dataclass
class ACMTLOutput:
    """What :meth:`ACMTL.forward` returns, like a Hugging Face model's output: the loss and its parts.

        loss = w · ner + (1 - w) / 2 · (boundary + type) + λ · sharing
    with w = ``main_task_weight`` and λ = ``soft_sharing_l2``. The parts are unweighted, and a part the
    architecture lacks is None: the baselines (``mtl="none"``) have only ``ner``, which is then their
    loss; only soft sharing (``mtl="soft"``) has the ``sharing`` penalty.
    """

    loss: torch.Tensor  # what training minimises
    ner: torch.Tensor  # CRF negative log-likelihood per token (Eq. 13)
    boundary: torch.Tensor | None = None  # cross-entropy of the BIOES-position task
    type: torch.Tensor | None = None  # cross-entropy of the entity-type task
    sharing: torch.Tensor | None = None  # L2 distance of the auxiliary blocks' weights to the NER block's

    def parts(self) -> dict[str, torch.Tensor]:
        """The parts this architecture has, by name (``ner`` first)."""
        return {f.name: getattr(self, f.name) for f in fields(self)[1:] if getattr(self, f.name) is not None}


class ACMTL(nn.Module):
    """AC-MTL with ablation switches; with everything off it is the encoder+CRF / BiLSTM-CRF baseline."""

    def __init__(self, cfg: ModelConfig, encoder: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        dim = encoder.dim
        if cfg.use_pinyin:
            self.syllable_embed = nn.Embedding(NUM_SYLLABLES, cfg.syllable_dim, padding_idx=0)
            self.tone_embed = nn.Embedding(NUM_TONES, cfg.tone_dim, padding_idx=0)
            dim += cfg.syllable_dim + cfg.tone_dim
        self.dim = dim
        structured = cfg.use_attention or cfg.use_cnn
        # One block per task under soft sharing; one shared block otherwise.
        n_blocks = 3 if (cfg.mtl == "soft" and structured) else (1 if structured else 0)
        self.blocks = nn.ModuleList(AttentionCNNBlock(cfg, dim) for _ in range(n_blocks))
        self.dropout = nn.Dropout(cfg.dropout)  # Eq. 14
        self.ner_head = nn.Linear(dim, len(cfg.tags))  # emission scores P
        self.crf = ConstrainedCRF(cfg.tags, constrain=cfg.constrained_decoding)
        if cfg.mtl != "none":
            self.boundary_head = nn.Linear(dim, 5)
            self.type_head = nn.Linear(dim, len(cfg.entity_types) + 1)

    # -- the shared trunk -------------------------------------------------------------------------
    def embed(self, char_ids, syllable_ids, tone_ids, mask) -> torch.Tensor:
        """E = concat(e_c, e_p)  (Eq. 8-9) -> [B, T, D]."""
        e = self.encoder(char_ids, mask)
        if self.cfg.use_pinyin:
            e = torch.cat([e, self.syllable_embed(syllable_ids), self.tone_embed(tone_ids)], dim=-1)
        return e

    def features(self, e, mask, block: int = 0, need_weights: bool = False):
        if not self.blocks:
            return e, None
        return self.blocks[block](e, mask, need_weights)

    def emissions(self, char_ids, syllable_ids, tone_ids, mask, need_weights: bool = False):
        """Emission scores [B, T, K] of the NER task (and the attention weights if asked)."""
        e = self.embed(char_ids, syllable_ids, tone_ids, mask)
        s, weights = self.features(e, mask, 0, need_weights)
        return self.ner_head(self.dropout(s)), weights

    # -- training -----------------------------------------------------------------------------
    def forward(self, char_ids, syllable_ids, tone_ids, mask, tag_ids) -> ACMTLOutput:
        """The training loss L = w·L_ner + (1-w)/2·(L_boundary + L_type) (+ soft-sharing L2), with its parts."""
        e = self.embed(char_ids, syllable_ids, tone_ids, mask)
        s_ner, _ = self.features(e, mask, 0)
        ner = self.crf.nll(self.ner_head(self.dropout(s_ner)), tag_ids, mask)
        if self.cfg.mtl == "none":
            return ACMTLOutput(loss=ner, ner=ner)
        s_boundary = self.features(e, mask, 1)[0] if len(self.blocks) == 3 else s_ner
        s_type = self.features(e, mask, 2)[0] if len(self.blocks) == 3 else s_ner
        boundary = F.cross_entropy(self.boundary_head(self.dropout(s_boundary))[mask],
                                   boundary_labels(tag_ids, self.cfg.tags)[mask])
        typed = F.cross_entropy(self.type_head(self.dropout(s_type))[mask], type_labels(tag_ids, self.cfg.tags)[mask])
        w = self.cfg.main_task_weight
        total = w * ner + (1 - w) / 2 * (boundary + typed)
        penalty = None
        if len(self.blocks) == 3:  # soft sharing: pull each auxiliary block towards the NER block
            shared = dict(self.blocks[0].named_parameters())
            penalty = sum(((p - shared[n]) ** 2).sum() for blk in self.blocks[1:] for n, p in blk.named_parameters())
            total = total + self.cfg.soft_sharing_l2 * penalty
        return ACMTLOutput(loss=total, ner=ner, boundary=boundary, type=typed, sharing=penalty)

    # -- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, char_ids, syllable_ids, tone_ids, mask) -> list[list[int]]:
        """Best tag ids per sentence (Viterbi over the NER emissions)."""
        emissions, _ = self.emissions(char_ids, syllable_ids, tone_ids, mask)
        return self.crf.viterbi(emissions, mask)

    @torch.no_grad()
    def attention_weights(self, char_ids, syllable_ids, tone_ids, mask) -> torch.Tensor:
        """Attention weights of the (NER) MHSA layer, [B, heads, T, T], for Figure 7."""
        if not self.cfg.use_attention:
            raise ValueError("this architecture has no attention layer")
        return self.emissions(char_ids, syllable_ids, tone_ids, mask, need_weights=True)[1]


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Exact parameter counts: total, of the encoder, and of everything added on top of it."""
    total = sum(p.numel() for p in model.parameters())
    encoder = sum(p.numel() for p in model.encoder.parameters())
    return {"total": total, "encoder": encoder, "added": total - encoder}
