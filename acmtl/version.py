"""acmtl's version: one place, imported by every layer (a saved model and a run record name it)."""

__version__ = "0.1.0"
