"""Training and evaluation engine: `trainer` (train loop, DDP, AMP, EMA, resume), `validate` (OKS AP, test runs),
`checkpoint` (atomic saves, RNG state), `optim` (optimizers, LR schedule, EMA), `distributed` (torchrun helpers),
`inference` (flip test, decoding), `debug` (debug images), `outputs` (output layout, logs, TensorBoard).

Submodules are imported on demand (`from hrnet_pose.engine.trainer import train`) so that light users such as the
inference API do not pull in the datasets and the evaluator.
"""
