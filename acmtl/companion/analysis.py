"""Analyses behind Figures 7, 8(b), 9 and 10: attention scores, spelling noise, error categories, theme-river streams.

**Attention score** (Figure 7). The paper plots an "attention score" of a word (北京, 创新) in a
sentence without defining it. Ours: for a sentence of ``n`` characters and the MHSA weights
``W[h, q, k]`` (head ``h``, query ``q``, key ``k``; each row sums to 1 over the ``n`` keys), the
score of a word occupying character positions ``K`` is

    score = mean_h mean_q  Σ_{k ∈ K} W[h, q, k]      (q over all n characters, the word's own included)

i.e. the share of attention that the word's characters *receive*, averaged over heads and over
query positions. It lies in [0, 1]; uniform attention gives ``|K| / n`` (:func:`uniform_attention_score`),
the baseline a score must be read against. A word occurring more than once is scored at one
occurrence (the first by default; a sentence where it occurs fewer times, at its last).

**Spelling noise** (Figure 8b). Each finished run tags the clean evaluation sentences and each
misspelt copy (:mod:`acmtl.data.noise`) through one path, :func:`acmtl.companion.runs.run_predictions` at one
batch size, so the clean row (rate 0) and the noisy rows differ only in the text; the seconds are
those tagging took.

**Error categories** (Figure 10). Per sentence, gold and predicted entities that match exactly
(same span, same type) are correct and set aside. The rest form a graph in which a gold and a
predicted entity are joined when their spans share a character; each connected part is one error:

===========================  =================================================================
missed                       a gold entity that no prediction overlaps
spurious                     a prediction that overlaps no gold entity
type confusion               one gold, one prediction, same span, other type (e.g. LOC→ORG)
boundary                     one gold, one prediction, overlapping spans, same type
boundary+type                one gold, one prediction, overlapping spans, other type
nested/overlap conflict      three or more entities in one part: one entity overlaps several on
                             the other side (北京交通大学/ORG predicted as 北京/LOC + 交通大学/ORG)
===========================  =================================================================

A boundary error also records how the spans relate (``pred inside gold``, ``gold inside pred``,
``crossing``), so a predicted inner entity (北京/LOC inside 北京交通大学/ORG) stays visible.

**Theme-river streams** (Figure 9). Documents in their order, per document the number of entity
mentions of each type. Streams are compared in consecutive windows of ``w`` documents: per type the
Pearson correlation of the predicted and true windowed counts, and per window the total-variation
distance ``½ Σ_t |p_t − q_t|`` between the predicted and the true type distributions (0 = same
mix of types, 1 = disjoint; undefined, NaN, for a window in which either stream has no mention).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from acmtl.core.encoders import CharTokenizer
from acmtl.core.features import collate, encode
from acmtl.core.model import ACMTL
from acmtl.core.predict import predict_tags
from acmtl.data.conll import Entity, Sentence, tags_to_entities
from acmtl.data.noise import HomophoneTable, NoiseReport, perturb

# English glosses of the ten LawBench 2-6 entity types, for figures without a CJK font.
LEGAL_TYPE_GLOSSES: dict[str, str] = {
    "犯罪嫌疑人": "suspect", "受害人": "victim", "被盗货币": "stolen money", "物品价值": "item value",
    "盗窃获利": "theft gain", "被盗物品": "stolen item", "作案工具": "tool", "时间": "time",
    "地点": "place", "组织机构": "organisation",
}

# -- Figure 7: attention scores -----------------------------------------------------------------


def token_positions(text: str, token: str, occurrence: int = 0) -> list[int]:
    """Character positions of the ``occurrence``-th (0-based) occurrence of ``token`` in ``text``."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.find(token, start + 1)
        if start < 0:
            raise ValueError(f"{token!r} occurs fewer than {occurrence + 1} times in {text!r}")
    return list(range(start, start + len(token)))


def attention_score(weights: torch.Tensor, positions: Sequence[int]) -> float:
    """Attention received by ``positions``, averaged over heads and queries (module docstring).

    ``weights`` is one sentence's ``[heads, n, n]`` (rows = queries, already cut to its ``n`` characters).
    """
    if weights.dim() != 3 or weights.shape[1] != weights.shape[2]:
        raise ValueError(f"expected attention weights [heads, n, n], got {tuple(weights.shape)}")
    n = weights.shape[-1]
    if not positions or not all(0 <= p < n for p in positions):
        raise ValueError(f"positions {list(positions)} are not within a sentence of {n} characters")
    return weights[:, :, list(positions)].sum(dim=-1).mean().item()


def uniform_attention_score(text: str, token: str) -> float:
    """The score under uniform attention (every key gets 1/n): ``len(token) / len(text)``."""
    token_positions(text, token)
    return len(token) / len(text)


def attention_scores(model: ACMTL, tokenizer: CharTokenizer, texts: Sequence[str], token: str,
                     occurrence: int = 0) -> list[float]:
    """The attention score of ``token`` in each text, from the model's (NER) MHSA layer, at its ``occurrence``-th
    occurrence (0-based), or at its last in a text where it occurs fewer times."""
    if occurrence < 0:
        raise ValueError(f"occurrence counts from 0 (the first), got {occurrence}")
    items = [encode(list(text), tokenizer) for text in texts]
    batch = collate(items, list(range(len(items))))
    model.eval()
    weights = model.attention_weights(*batch.inputs)  # [B, heads, T, T]
    return [attention_score(weights[i, :, : len(text), : len(text)],
                            token_positions(text, token, min(occurrence, max(0, text.count(token) - 1))))
            for i, text in enumerate(texts)]


def attention_table(models: Mapping[str, tuple[ACMTL, CharTokenizer]], panels: Mapping[str, tuple[str, Sequence[str]]],
                    paper: pd.DataFrame, occurrence: int = 0) -> pd.DataFrame:
    """Figure 7's scores: one row per panel, sentence and model, with the uniform baseline and the paper's value.

    ``models``: arch -> (model, tokenizer); ``panels``: panel ("7(a)") -> (word, sentences), the sentences lettered
    a, b, ... in panel 7(a) and A, B, ... after it, as in the paper; ``paper``:
    :func:`acmtl.companion.claims.paper_attention_scores`, whose context names panel and sentence ("7(a) sentence b").
    """
    from acmtl.companion.tables import ARCH_LABELS, PAPER_MODELS

    rows = []
    for k, (panel, (token, sentences)) in enumerate(panels.items()):
        letters = "abcdefghijklmnopqrstuvwxyz" if k == 0 else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        for arch, (model, tokenizer) in models.items():
            scores = attention_scores(model, tokenizer, sentences, token, occurrence)
            rows += [{"panel": panel, "sentence": letter, "token": token, "arch": arch,
                      "model": ARCH_LABELS.get(arch, arch), "attention_score": score,
                      "uniform_score": uniform_attention_score(text, token), "characters": len(text), "text": text}
                     for letter, text, score in zip(letters, sentences, scores)]
    table = pd.DataFrame(rows)
    table["score_over_uniform"] = table["attention_score"] / table["uniform_score"]
    stated = paper.assign(panel=paper["context"].str.extract(r"^(7\([ab]\))", expand=False),
                          sentence=paper["context"].str.extract(r"sentence (\w)$", expand=False),
                          arch=paper["model"].map({name: arch for arch, name in PAPER_MODELS.items()}))
    stated = stated[["panel", "sentence", "arch", "paper_attention_score", "note"]].rename(
        columns={"note": "paper_note"})
    return table.merge(stated, on=["panel", "sentence", "arch"], how="left")


# -- predictions --------------------------------------------------------------------------------


def predict_entities(model: ACMTL, tokenizer: CharTokenizer, texts: Sequence[Sequence[str]],
                     batch_size: int = 32) -> list[list[Entity]]:
    """Predicted entities of each text (a string or a sequence of characters); long texts are windowed."""
    return [tags_to_entities(tags) for tags in predict_tags(model, tokenizer, texts, batch_size=batch_size)]


def sample_misclassified(model: ACMTL, tokenizer: CharTokenizer, sentences: Sequence[Sentence], limit: int = 100,
                         seed: int = 0, chunk: int = 128) -> tuple[list[tuple[int, list[Entity]]], int]:
    """Up to ``limit`` sentences whose predicted entities differ from the gold, and how many were examined.

    Sentences are visited in a seeded random order and predicted a chunk at a time until ``limit``
    misclassified ones are found, so a random sample costs far less than predicting a whole test set;
    ``found / examined`` estimates the share of misclassified sentences. The sample is a list of
    (index, predicted entities), sorted by index.
    """
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    found: list[tuple[int, list[Entity]]] = []
    examined = 0
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        for i, pred in zip(rows, predict_entities(model, tokenizer, [sentences[i].chars for i in rows])):
            if len(found) == limit:
                break
            examined += 1
            if set(pred) != set(sentences[i].entities()):
                found.append((i, pred))
        if len(found) == limit:
            break
    return sorted(found, key=lambda row: row[0]), examined


# -- Figure 8(b): spelling noise ----------------------------------------------------------------

def homophone_table(vocabulary: CharTokenizer, *, min_count: int = 5) -> HomophoneTable:
    """The characters of MSRA's training text seen at least ``min_count`` times that ``vocabulary`` knows (not
    [UNK]), by their most common reading: where Figure 8(b)'s replacements come from."""
    from acmtl.data.corpora import load_corpus

    chars = (c for s in load_corpus("msra").splits["train"] for c in s.chars
             if vocabulary.encode([c])[0] != vocabulary.unk_id)
    return HomophoneTable.from_characters(chars, min_count=min_count)


def misspell(sentences: Sequence[Sentence], table: HomophoneTable, rates: Sequence[float], *, seed: int = 0,
             near_homophone_prob: float = 0.3) -> dict[float, tuple[list[Sentence], NoiseReport]]:
    """rate -> misspelt copies of ``sentences`` and their report (:func:`acmtl.data.noise.perturb`), the form
    :func:`noise_scores` takes."""
    return {rate: perturb(sentences, table, rate, seed=seed, near_homophone_prob=near_homophone_prob)
            for rate in rates}


def homophone_noise(sentences: Sequence[Sentence], vocabulary: CharTokenizer, rates: Sequence[float], *, seed: int = 0,
                    near_homophone_prob: float = 0.3, min_count: int = 5) -> tuple[HomophoneTable, dict]:
    """Misspelt copies of ``sentences`` at each rate (:func:`misspell`), replacements drawn from
    :func:`homophone_table`. Returns (the homophone table, rate -> (sentences, report)), the form :func:`noise_scores`
    takes."""
    table = homophone_table(vocabulary, min_count=min_count)
    return table, misspell(sentences, table, rates, seed=seed, near_homophone_prob=near_homophone_prob)


def noise_examples(clean: Sequence[Sentence], noisy: Mapping[float, tuple[Sequence[Sentence], NoiseReport]],
                   n: int = 3, max_chars: int = 40) -> pd.DataFrame:
    """The first ``n`` short sentences with entities, clean and at the highest noise rate, with their entities."""
    rate = max(noisy)
    shown = [i for i, s in enumerate(clean) if s.entities() and len(s.chars) <= max_chars][:n]
    return pd.DataFrame({"clean": [clean[i].text for i in shown],
                         f"rate {rate}": [noisy[rate][0][i].text for i in shown],
                         "entities": ["; ".join(f"{clean[i].text[e.start:e.end]}/{e.type}" for e in clean[i].entities())
                                      for i in shown]})


# -- Figure 10: error categories ----------------------------------------------------------------

CATEGORIES = ("type confusion", "boundary", "boundary+type", "nested/overlap conflict", "missed", "spurious")


@dataclass(frozen=True)
class EntityError:
    category: str
    gold: tuple[Entity, ...]
    pred: tuple[Entity, ...]
    relation: str = ""  # for one gold vs one prediction: same span / pred inside gold / gold inside pred / crossing


def _overlap(a: Entity, b: Entity) -> bool:
    return a.start < b.end and b.start < a.end


def _relation(gold: Entity, pred: Entity) -> str:
    if (gold.start, gold.end) == (pred.start, pred.end):
        return "same span"
    if gold.start <= pred.start and pred.end <= gold.end:
        return "pred inside gold"
    if pred.start <= gold.start and gold.end <= pred.end:
        return "gold inside pred"
    return "crossing"


def categorise_errors(gold: Sequence[Entity], pred: Sequence[Entity]) -> list[EntityError]:
    """The errors of one sentence, by the rules of the module docstring, in order of position."""
    key = lambda e: (e.start, e.end, e.type)
    golds = sorted(set(gold) - set(pred), key=key)
    preds = sorted(set(pred) - set(gold), key=key)
    nodes = [("g", e) for e in golds] + [("p", e) for e in preds]
    parent = list(range(len(nodes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, g in enumerate(golds):
        for j, p in enumerate(preds, start=len(golds)):
            if _overlap(g, p):
                parent[root(i)] = root(j)
    parts: dict[int, list[int]] = {}
    for i in range(len(nodes)):
        parts.setdefault(root(i), []).append(i)
    errors = []
    for members in parts.values():
        g = tuple(nodes[i][1] for i in members if nodes[i][0] == "g")
        p = tuple(nodes[i][1] for i in members if nodes[i][0] == "p")
        if not p:
            errors.append(EntityError("missed", g, p))
        elif not g:
            errors.append(EntityError("spurious", g, p))
        elif len(g) + len(p) > 2:
            errors.append(EntityError("nested/overlap conflict", g, p, "one-to-many"))
        else:
            relation = _relation(g[0], p[0])
            if relation == "same span":
                category = "type confusion"
            else:
                category = "boundary" if g[0].type == p[0].type else "boundary+type"
            errors.append(EntityError(category, g, p, relation))
    return sorted(errors, key=lambda e: min(x.start for x in e.gold + e.pred))


def _show(text: str, entities: Sequence[Entity]) -> str:
    return "; ".join(f"{text[e.start:e.end]}/{e.type}" for e in entities)


def error_table(sentences: Sequence[Sentence], predicted: Sequence[tuple[int, Sequence[Entity]]]) -> pd.DataFrame:
    """One row per error: sentence index and text, category, relation, gold and predicted entities,
    and the type pair (gold→predicted) where one gold meets one prediction of another type."""
    rows = []
    for index, pred in predicted:
        sentence = sentences[index]
        text = sentence.text
        for err in categorise_errors(sentence.entities(), pred):
            pair = ""
            if len(err.gold) == len(err.pred) == 1 and err.gold[0].type != err.pred[0].type:
                pair = f"{err.gold[0].type}→{err.pred[0].type}"
            rows.append({"sentence": index, "category": err.category, "relation": err.relation,
                         "gold": _show(text, err.gold), "predicted": _show(text, err.pred), "type_pair": pair,
                         "text": text})
    columns = ["sentence", "category", "relation", "gold", "predicted", "type_pair", "text"]
    return pd.DataFrame(rows, columns=columns)


def error_counts(errors: pd.DataFrame) -> pd.DataFrame:
    """Per category (all six, in :data:`CATEGORIES` order): errors, sentences with one or more, share of errors."""
    counts = pd.DataFrame({
        "category": list(CATEGORIES),
        "errors": [int((errors["category"] == c).sum()) for c in CATEGORIES],
        "sentences": [errors.loc[errors["category"] == c, "sentence"].nunique() for c in CATEGORIES],
    })
    counts["share"] = counts["errors"] / max(1, counts["errors"].sum())
    return counts


# -- Figure 9: theme-river streams --------------------------------------------------------------


def document_type_counts(documents: Sequence[Sequence[Entity]], types: Sequence[str]) -> pd.DataFrame:
    """Rows = documents in order, columns = ``types``: how many mentions of each type a document has."""
    table = pd.DataFrame(0, index=pd.RangeIndex(len(documents), name="document"), columns=list(types), dtype=int)
    for d, entities in enumerate(documents):
        for e in entities:
            if e.type not in table.columns:
                raise ValueError(f"document {d} has an entity of type {e.type!r}, not among {list(types)}")
            table.iat[d, table.columns.get_loc(e.type)] += 1
    return table


def smooth_counts(counts: pd.DataFrame, window: int) -> pd.DataFrame:
    """Centred moving average over ``window`` documents (shorter at the ends): the plotted stream."""
    return counts.rolling(window, center=True, min_periods=1).mean()


def window_counts(counts: pd.DataFrame, window: int) -> pd.DataFrame:
    """Counts summed over consecutive, non-overlapping windows of ``window`` documents (the last may be shorter);
    the index is each window's first document."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    summed = counts.groupby(np.arange(len(counts)) // window).sum()
    summed.index = pd.Index(summed.index * window, name="first_document")
    return summed


def _distribution(counts: pd.DataFrame) -> pd.DataFrame:
    totals = counts.sum(axis=1)
    return counts.div(totals.where(totals > 0), axis=0)


def stream_agreement(predicted: pd.DataFrame, true: pd.DataFrame, window: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How closely a predicted stream follows the true one, in windows of ``window`` documents.

    Returns (per type, per window). Per type: total predicted and true mentions and the Pearson
    correlation of the windowed counts (NaN where either stream is constant). Per window: predicted
    and true mentions, the total-variation distance between the two type distributions, and, as a
    reference, the distance of the true window's distribution from the true overall one (how much
    the mix of types varies from window to window by itself).
    """
    if list(predicted.columns) != list(true.columns) or len(predicted) != len(true):
        raise ValueError("predicted and true streams must have the same documents and types")
    p, t = window_counts(predicted, window), window_counts(true, window)
    per_type = pd.DataFrame({
        "type": list(true.columns),
        "predicted_mentions": predicted.sum().to_numpy(),
        "true_mentions": true.sum().to_numpy(),
        "pearson_r": [p[c].corr(t[c]) if p[c].std() > 0 and t[c].std() > 0 else np.nan for c in true.columns],
    })
    overall = true.sum() / max(1, true.to_numpy().sum())
    p_dist, t_dist = _distribution(p), _distribution(t)
    per_window = pd.DataFrame({
        "first_document": p.index,
        "documents": [min(window, len(true) - start) for start in p.index],
        "predicted_mentions": p.sum(axis=1).to_numpy(),
        "true_mentions": t.sum(axis=1).to_numpy(),
        "tv_distance": 0.5 * (p_dist - t_dist).abs().sum(axis=1, min_count=1).to_numpy(),
        "tv_true_vs_overall": 0.5 * (t_dist - overall).abs().sum(axis=1, min_count=1).to_numpy(),
    })
    return per_type, per_window

