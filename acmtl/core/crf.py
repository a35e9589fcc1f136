"""The CRF layer (Eq. 13): ``pytorch-crf`` for the likelihood, a batched Viterbi for decoding.

``torchcrf.CRF.decode`` back-tracks each sentence in a Python loop over lists; ours keeps the
back-pointers of the whole batch in one array and follows them for all sentences at once, in
numpy (1.5x faster than the same loop in torch on one thread, and 100x+ faster than torch's
two-thread pool on a CPU that another job keeps busy). Decoding may also forbid transitions
that break the BIOES scheme (``O -> I-PER``, ``B-PER -> E-LOC``, ...): the model then never
outputs a broken entity.
Training keeps pytorch-crf's unconstrained likelihood (constraints only at decoding, as in
AllenNLP's ``allowed_transitions``), so gradients are exactly pytorch-crf's.

Confidence comes from the same distribution the decoder maximises, p(y | x) ∝ exp(score(y)) with
the decoding constraints: :meth:`ConstrainedCRF.forward_backward` runs the forward and backward
recursions in log space for a whole batch, and :func:`span_probability` turns them into the
probability that a span carries exactly the predicted tags.
"""

from __future__ import annotations

import numpy as np
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
    def decoding_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Start [K], transition [K_from, K_to] and end [K] scores, forbidden moves pushed to -1e4."""
        forbid = lambda allowed: torch.where(allowed, 0.0, _FORBIDDEN)
        return (self.start_transitions + forbid(self.allowed_start),
                self.transitions + forbid(self.allowed_transitions),
                self.end_transitions + forbid(self.allowed_end))

    @torch.no_grad()
    def forward_backward(self, emissions: torch.Tensor, mask: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log forward and backward scores under the decoding scores, in float64.

        emissions [B, T, K], mask [B, T] (left-aligned) -> alpha [B, T, K], beta [B, T, K], log Z [B], where
        alpha[b, t, j] = log of the summed exp-scores of all prefixes y_0..y_t with y_t = j (emission at t
        included) and beta[b, t, j] = the same over all suffixes y_{t+1}..y_{n-1} after y_t = j (end score
        included), so that p(y_t = j) = exp(alpha + beta - log Z). Past a sentence's end alpha stays at its
        last value and beta is the end score: padding adds nothing.
        """
        start, trans, end = (s.double() for s in self.decoding_scores())
        em, on = emissions.detach().double(), mask.bool()[:, :, None]
        length = em.shape[1]
        alpha, beta = torch.empty_like(em), torch.empty_like(em)
        alpha[:, 0] = start + em[:, 0]
        for t in range(1, length):
            step = torch.logsumexp(alpha[:, t - 1, :, None] + trans, dim=1) + em[:, t]  # [B, K_to]
            alpha[:, t] = torch.where(on[:, t], step, alpha[:, t - 1])
        beta[:, length - 1] = end
        for t in range(length - 2, -1, -1):
            step = torch.logsumexp(trans + (em[:, t + 1] + beta[:, t + 1])[:, None, :], dim=2)  # [B, K_from]
            beta[:, t] = torch.where(on[:, t + 1], step, end)
        return alpha, beta, torch.logsumexp(alpha[:, length - 1] + end, dim=1)

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """p(y_t = j | x) [B, T, K] (float64; rows past a sentence's end are meaningless)."""
        alpha, beta, log_z = self.forward_backward(emissions, mask)
        return (alpha + beta - log_z[:, None, None]).exp()

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """y* = argmax_y sum_i (A[y_{i-1}, y_i] + P[i, y_i])  (Eq. 13).

        emissions [B, T, K], mask [B, T] (bool, left-aligned, first step on) -> best tag ids per sentence.
        Runs in numpy on the CPU whatever the device: each step is a few operations on a [B, K, K]
        array, too small for torch's per-call cost (and its thread pool, which stalls on a busy CPU).
        """
        em = emissions.detach().float().cpu().numpy()
        lengths = mask.sum(dim=1).cpu().numpy()
        batch, length, k = em.shape
        start, trans, end = (s.float().cpu().numpy() for s in self.decoding_scores())  # [K], [K, K], [K]
        trans_to_from = np.ascontiguousarray(trans.T)  # reduce over the last (contiguous) axis

        # scores[t, b, j]: best score of a path over steps 0..t ending in tag j. Steps past a
        # sentence's end are computed on padding and never read: its path ends at lengths[b] - 1.
        scores = np.empty((length, batch, k), dtype=np.float32)
        backpointers = np.empty((length, batch, k), dtype=np.intp)  # best previous tag, per step and tag
        scores[0] = start + em[:, 0]
        for t in range(1, length):
            candidates = scores[t - 1][:, None, :] + trans_to_from  # [B, K_to, K_from]
            best_prev = candidates.argmax(axis=2)  # [B, K_to]
            backpointers[t] = best_prev
            scores[t] = np.take_along_axis(candidates, best_prev[:, :, None], axis=2)[:, :, 0] + em[:, t]

        rows = np.arange(batch)
        last = (scores[lengths - 1, rows] + end).argmax(axis=1)  # [B] best final tag
        path = np.empty((batch, length), dtype=np.intp)
        path[:, length - 1] = current = last
        for t in range(length - 1, 0, -1):
            # Inside the sentence follow the pointer stored at step t; past its end restart from `last`.
            current = np.where(t < lengths, backpointers[t, rows, current], last)
            path[:, t - 1] = current
        return [row[:n].tolist() for row, n in zip(path, lengths.tolist())]


def span_probability(alpha: np.ndarray, beta: np.ndarray, emissions: np.ndarray, transitions: np.ndarray,
                     log_z: float, start: int, tags: list[int]) -> float:
    """p(y_start .. y_{start+n-1} = tags | x): the probability that the span carries exactly these tags.

    For an entity these are all its tags (``B-X I-X .. E-X``, or ``S-X``), so this is the probability
    that the CRF would tag exactly this span as this entity, whatever it tags elsewhere: the sum of
    p(y | x) over every whole-sentence path y that agrees with ``tags`` on the span. In log space::

        log p = alpha[s, y_s] + sum_{i=s+1}^{e} (A[y_{i-1}, y_i] + P[i, y_i]) + beta[e, y_e] - log Z

    ``alpha``, ``beta`` [T, K] and ``log_z`` are one sentence's :meth:`ConstrainedCRF.forward_backward`
    output, ``emissions`` [T, K] its emission scores P, ``transitions`` [K, K] the decoding scores A.
    """
    end = start + len(tags) - 1
    inside = sum(transitions[a, b] + emissions[i, b]
                 for i, (a, b) in enumerate(zip(tags, tags[1:]), start=start + 1))
    return float(np.exp(alpha[start, tags[0]] + inside + beta[end, tags[-1]] - log_z))
