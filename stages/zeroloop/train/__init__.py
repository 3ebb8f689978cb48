"""The train stage: KataGo's train.py over zeroloop's shuffled data.

``main`` is the command; ``loop`` the resumable training loop; ``bucket``
the train bucket (pure); ``files`` which files each epoch uses and the data
position (pure); ``data`` batches prepared in a background thread;
``losses`` every loss term and weight; ``optim`` optimizer, schedule and the
averaged model; ``checkpoint`` atomic rotated checkpoints; ``progress``
metrics; ``options`` the run's settings.

Where it differs from KataGo's train.py: no validation pass, sub-epochs,
lookahead optimizer, history-feature dropout or long-term checkpoints; the
loss has no score-belief, TD-value or auxiliary heads (the net has none);
waiting for the bucket polls for new data every ``--data-poll-seconds``
instead of sleeping 5 minutes; checkpoints are also written inside an
epoch (``--checkpoint-interval-seconds``) and on SIGTERM, and resume at the
next batch.
"""
