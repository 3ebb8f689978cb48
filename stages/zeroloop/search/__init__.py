"""Batched PUCT search: compiled tree pools, the search math, evaluators, a batch driver.

Layers, lowest first: ``puct`` (pure search math: PUCT, FPU, noise, forced
playouts, policy-target pruning, temperatures), ``tree`` (per-game node and
edge pools and the compiled select / expand / backup / re-root over a batch
of games), ``evaluators`` (what turns a batch of features into policy and
value: null, random, a net), ``batch`` (the Python driver: one batched
forward pass per step over every game's leaf).
"""
