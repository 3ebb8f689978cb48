"""The train stage: KataGo's train.py over zeroloop's shuffled data.

``main`` is the command; ``loop`` the resumable training loop; ``bucket``
the train bucket (pure); ``files`` which files each epoch uses and the data
position (pure); ``data`` batches prepared in a background thread;
``losses`` every loss term and weight; ``optim`` optimizer, schedule and the
averaged model; ``checkpoint`` atomic rotated checkpoints; ``progress``
metrics; ``options`` the run's settings.
"""
