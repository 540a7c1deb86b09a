"""Training and evaluation engine: `trainer` (train loop, DDP, AMP, EMA, resume), `validate` (OKS AP, test runs),
`checkpoint` (atomic saves, RNG state), `optim` (optimizers, LR schedule, EMA), `distributed` (torchrun helpers),
`step` (one training step and its non-finite guard), `debug` (debug images), `outputs` (output layout, logs,
TensorBoard), `cli` (the official train/test command line).

Submodules are imported on demand (`from hrnet_pose.engine.trainer import train`). The engine imports nothing from
the inference API (`apis`), deployment (`deploy`) or the benchmarks: the forward and flip test it shares with them live
in `models.inference` and `codecs.flip`.
"""
