"""Using a trained model: the predictor behind ``acmtl.from_pretrained`` (``predictor``), the ONNX Runtime backends
it can run on (``backends``), output formats (``formats``) and the model card of a saved folder (``card``)."""
