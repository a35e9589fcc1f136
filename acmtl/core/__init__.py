"""The method: AC-MTL and its baselines (``model``, ``crf``), their inputs (``features``, ``encoders``), training
(``train``), tagging (``predict``), saved models (``checkpoint``) and entity scores (``evaluate``). It imports
nothing from the companion or the serving side: read it top to bottom as the paper's model."""
