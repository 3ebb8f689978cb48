"""Interoperation with KataGo: its model file format and its self-play data.

- ``modelformat``: KataGo's ``.bin``/``.bin.gz`` model format (writer and
  reader, from ``cpp/neuralnet/desc.cpp``);
- ``netexport``: a zeroloop net as a KataGo model that computes the same;
- ``reference``: KataGo's forward pass and output post-processing over a
  parsed model, in numpy/torch, to check a file without the engine;
- ``positions``: positions replayed on both zeroloop and KataGo;
- ``tdata``: KataGo self-play ``.npz`` rows converted to zeroloop rows.

See docs/katago.md for what maps to what and what is lost.
"""
