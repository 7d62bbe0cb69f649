"""Beyond one unit at a time: concepts spread over units, concept maps, and chance.

- :mod:`~conceptkit.beyond.features` what a finished run folder provides (dataset concepts,
  model, features from one forward pass), shared by the three analyses;
- :mod:`~conceptkit.beyond.net2vec`  concepts as learned combinations of a layer's units
  (Net2Vec, Fong & Vedaldi, CVPR 2018): :func:`~conceptkit.beyond.net2vec.embed`;
- :mod:`~conceptkit.beyond.segment`  per-pixel concept maps of any image:
  :func:`~conceptkit.beyond.segment.segment_images`;
- :mod:`~conceptkit.beyond.chance`   the IoU a blindly placed mask would reach, z-scores,
  support: :func:`~conceptkit.beyond.chance.chance`;
- :mod:`~conceptkit.beyond.files`    atomic writers of their files.
"""
