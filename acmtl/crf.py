"""The CRF layer (Eq. 13): ``pytorch-crf`` for the likelihood, a batched Viterbi for decoding.

``torchcrf.CRF.decode`` back-tracks each sentence in a Python loop over lists; ours keeps the
back-pointers as one tensor and follows them with ``gather``, which is several times faster on
CPU for batches of 32. Decoding may also forbid transitions that break the BIOES scheme
(``O -> I-PER``, ``B-PER -> E-LOC``, ...): the model then never outputs a broken entity.
Training keeps pytorch-crf's unconstrained likelihood (constraints only at decoding, as in
AllenNLP's ``allowed_transitions``), so gradients are exactly pytorch-crf's.
"""

from __future__ import annotations

import torch
from torchcrf import CRF

_FORBIDDEN = -1e4  # added to a forbidden transition's score; far below any learnt score


def bioes_allowed(tags: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boolean masks (start [K], transitions [K, K], end [K]) of what BIOES allows."""

    def split(tag: str) -> tuple[str, str]:
        return (tag, "") if tag == "O" else (tag[0], tag[2:])

    def may_follow(prev: str, nxt: str) -> bool:
        (p, pt), (n, nt) = split(prev), split(nxt)
        if p in ("B", "I"):  # inside an entity: continue it with the same type
            return n in ("I", "E") and nt == pt
        return n in ("O", "B", "S")  # after O, E or S: a new entity or nothing

    k = len(tags)
    start = torch.tensor([split(t)[0] in ("O", "B", "S") for t in tags])
    end = torch.tensor([split(t)[0] in ("O", "E", "S") for t in tags])
    trans = torch.tensor([[may_follow(tags[i], tags[j]) for j in range(k)] for i in range(k)])
    return start, trans, end


class ConstrainedCRF(CRF):
    """``torchcrf.CRF`` (batch_first) with a vectorised, optionally BIOES-constrained Viterbi."""

    def __init__(self, tags: list[str], constrain: bool = True) -> None:
        super().__init__(len(tags), batch_first=True)
        start, trans, end = bioes_allowed(tags) if constrain else (None, None, None)
        ones = torch.ones(len(tags), dtype=torch.bool)
        self.register_buffer("allowed_start", start if constrain else ones, persistent=False)
        self.register_buffer("allowed_end", end if constrain else ones, persistent=False)
        self.register_buffer(
            "allowed_transitions", trans if constrain else ones[:, None] & ones, persistent=False
        )

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per real token; kept in fp32 even under autocast."""
        return -self(emissions.float(), tags, mask, reduction="token_mean")

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """y* = argmax_y sum_i (A[y_{i-1}, y_i] + P[i, y_i])  (Eq. 13).

        emissions [B, T, K], mask [B, T] (bool, left-aligned, first step on) -> best tag ids per sentence.
        """
        emissions = emissions.float()
        batch, length, _ = emissions.shape
        forbid = lambda allowed: (~allowed).float() * _FORBIDDEN  # noqa: E731
        start = self.start_transitions + forbid(self.allowed_start)  # [K]
        trans = self.transitions + forbid(self.allowed_transitions)  # [K, K]  (from, to)
        end = self.end_transitions + forbid(self.allowed_end)  # [K]

        score = start + emissions[:, 0]  # [B, K]  best score of a path ending in each tag
        backpointers = []
        for t in range(1, length):
            # [B, K_from, 1] + [K_from, K_to] + [B, 1, K_to] -> best previous tag for each current tag
            candidates = score.unsqueeze(2) + trans + emissions[:, t].unsqueeze(1)
            best, best_prev = candidates.max(dim=1)  # [B, K], [B, K]
            on = mask[:, t].unsqueeze(1)  # padded steps carry the score through unchanged
            score = torch.where(on, best, score)
            backpointers.append(best_prev)
        score = score + end

        lengths = mask.long().sum(dim=1)  # [B]
        last = score.argmax(dim=1)  # [B] best final tag
        path = torch.zeros(batch, length, dtype=torch.long, device=emissions.device)
        path[torch.arange(batch), lengths - 1] = last
        current = last
        for t in range(length - 1, 0, -1):
            # Follow the pointer stored at step t only where t is inside the sentence.
            prev = backpointers[t - 1].gather(1, current.unsqueeze(1)).squeeze(1)
            inside = t <= lengths - 1
            current = torch.where(inside, prev, current)
            path[:, t - 1] = torch.where(inside, current, path[:, t - 1])
        return [row[:n].tolist() for row, n in zip(path, lengths.tolist())]
