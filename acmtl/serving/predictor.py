"""The predictor behind ``acmtl.from_pretrained``: a trained model as a Hugging Face style pipeline.

It wraps the method's tagging (:func:`acmtl.core.predict.predict_entities`) with what a user of a saved model
needs: loading a run folder or a saved model by name, an inference backend (eager PyTorch, or ONNX Runtime from
:mod:`acmtl.serving.backends`), and saving with a model card (:mod:`acmtl.serving.card`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from acmtl.core.checkpoint import load_pretrained, save_pretrained
from acmtl.core.encoders import CharTokenizer
from acmtl.core.model import ACMTL
from acmtl.core.predict import MAX_LEN, default_device, predict_entities
from acmtl.paths import run_folder
from acmtl.serving.backends import acmtl_emissions
from acmtl.serving.card import read_run_records, write_model_card


def _described(texts) -> str:
    """What ``texts`` is, for an error message: its type, or the type of the first item that is not a str."""
    if isinstance(texts, Sequence) and not isinstance(texts, bytes):
        wrong = next(text for text in texts if not isinstance(text, str))
        return f"a {type(texts).__name__} holding a {type(wrong).__name__} ({wrong!r:.40})"
    return f"a {type(texts).__name__}" if texts is not None else "None"


class NERPredictor:
    """Raw text in, entities out, in the shape of a Hugging Face pipeline::

        ner = acmtl.from_pretrained("runs/<hash>")      # or any folder written by save_pretrained
        ner("他毕业于北京交通大学。")                      # one text -> its entities
        ner.predict(["text 1", "text 2"])                 # a list -> one list of entities per text
        ner.to("cuda").save_pretrained("my-model/")

    An entity is ``{"type", "start", "end", "text", "score"}`` with ``text == input[start:end]`` and
    ``score`` the CRF's probability of exactly this span with exactly these tags (see
    :func:`acmtl.core.crf.span_probability`).
    """

    def __init__(self, model: ACMTL, tokenizer: CharTokenizer, *, batch_size: int = 32, max_len: int = MAX_LEN,
                 backend: str = "eager", onnx_dir: str | Path | None = None):
        """``backend``: eager | onnx | onnx-int8 (:mod:`acmtl.serving.backends`; ONNX files cached in ``onnx_dir``)."""
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_len = batch_size, max_len
        self.network = acmtl_emissions(model, backend, cache_dir=onnx_dir)  # None: eager PyTorch
        self.run: dict | None = None  # the run.json and metrics.json it was trained with, for its model card
        self.metrics: dict | None = None

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device | None = None,
                        **kwargs) -> NERPredictor:
        """Load a run directory (``runs/<hash>/``, or the hash alone for a run of the run cache) or any directory
        written by ``save_pretrained``; ``device`` None picks CUDA when present, else the CPU."""
        directory = run_folder(directory)
        if (directory / "model").is_dir():  # a run directory keeps its best model under model/
            directory = directory / "model"
        model, tokenizer = load_pretrained(directory)
        kwargs.setdefault("onnx_dir", directory / "onnx")  # exports for the ONNX backends live beside the weights
        predictor = cls(model, tokenizer, **kwargs).to(device or default_device())
        predictor.run, predictor.metrics = read_run_records(directory)
        return predictor

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> NERPredictor:
        """Move the model to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...); returns self."""
        self.model.to(device)
        return self

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model to ``directory`` (weights, config, tokenizer, model card); load it with from_pretrained."""
        directory = save_pretrained(self.model, self.tokenizer, directory)
        write_model_card(directory, self.model.cfg, self.run, self.metrics)
        return directory

    def predict(self, texts: str | Sequence[str]) -> list[dict] | list[list[dict]]:
        """Entities of one text, or of each text of a list (see the class docstring for their keys)."""
        if isinstance(texts, str):
            return self.predict([texts])[0]
        if not isinstance(texts, Sequence) or not all(isinstance(text, str) for text in texts):
            raise TypeError(f"ner() takes a text (a str) or a list of texts, not {_described(texts)}")
        return predict_entities(self.model, self.tokenizer, texts, batch_size=self.batch_size, max_len=self.max_len,
                                network=self.network)

    __call__ = predict
