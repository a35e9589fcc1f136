"""acmtl: a reproducible companion to "Attention-CNN with Multi-Task Learning for Chinese NER"."""

__version__ = "0.1.0"


def from_pretrained(directory, **kwargs):
    """Load a trained run (``runs/<hash>/``) for prediction: ``acmtl.from_pretrained(d).predict(texts)``."""
    from acmtl.predict import NERPredictor

    return NERPredictor.from_pretrained(directory, **kwargs)
