"""Neural nets: named sizes, the KataGo-style model, model files, batched inference.

``MAX_POS_LEN`` is here, not in a module that needs torch or numpy, so that settings which bound a
net's board length (``zeroloop.train.options``) import without them.
"""

MAX_POS_LEN = 32  # the largest board length a net is built for, and a model file may say
