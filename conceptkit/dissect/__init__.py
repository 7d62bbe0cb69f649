"""Network Dissection of any PyTorch model against a Broden-layout folder.

- :mod:`~conceptkit.dissect.models`     load a model from a file or torchvision; list layers.
- :mod:`~conceptkit.dissect.preprocess` uint8 images -> model input (imagenet, netdissect).
- :mod:`~conceptkit.dissect.hooks`      capture named layers' outputs in one forward pass.
- :mod:`~conceptkit.dissect.stats`      exact quantile, top-N images, IoU tally (pure tensors).
- :mod:`~conceptkit.dissect.run`        the two-pass run: ``dissect(model, data, layers)``.
- :mod:`~conceptkit.dissect.results`    ``DissectResult``: tally rows, unique detectors, files.
"""
