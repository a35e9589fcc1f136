"""acmtl: a reproducible companion to "Attention-CNN with Multi-Task Learning for Chinese NER"."""

__version__ = "0.1.0"
