"""Network Dissection of any PyTorch model against a Broden-layout folder.

- :mod:`~conceptkit.dissection.models`     load a model from a file or torchvision; list layers.
- :mod:`~conceptkit.dissection.preprocess` uint8 images -> model input (imagenet, netdissect).
- :mod:`~conceptkit.dissection.hooks`      capture named layers' outputs in one forward pass.
- :mod:`~conceptkit.dissection.stats`      exact quantile, top-N images, IoU tally (pure tensors).
- :mod:`~conceptkit.dissection.run`        the two-pass run: ``dissect(model, data, layers)``.
- :mod:`~conceptkit.dissection.results`    ``DissectResult``: tally rows, unique detectors, files.
"""
