"""Helpers shared by the model-zoo tests (COCO and MPII entries): `from zoo_testlib import cache_mmpose_checkpoint`."""

import os
from collections import OrderedDict

import torch

from hrnet_pose.apis import zoo
from hrnet_pose.models import build_model


def cache_mmpose_checkpoint(hub: str, name: str, head_prefix: str, meta: dict):
    """Zoo entry `name`'s network with seeded random weights, saved in the hub cache `hub` as the entry's file in
    MMPose's layout, as a download leaves it: `backbone.*` and `<head_prefix>final_layer.*` (MMPose 1.x: "head.",
    0.x: "keypoint_head."), with `meta`. Returns the network, to compare the loaded weights with."""
    entry = zoo.get_entry(name)
    torch.manual_seed(0)
    model = build_model(zoo.entry_config(entry.name)).eval()
    mmpose = OrderedDict(((head_prefix if k.startswith("final_layer.") else "backbone.") + k, v)
                         for k, v in model.state_dict().items())
    os.makedirs(hub)
    torch.save({"meta": meta, "state_dict": mmpose}, os.path.join(hub, entry.filename))
    return model


def seeded_mmpose_state(name: str, head_prefix: str, seed: int = 23) -> "OrderedDict[str, torch.Tensor]":
    """Zoo entry `name`'s network with weights drawn from a seeded generator, not by the network's own init, in
    MMPose's layout (`backbone.*`, `<head_prefix>final_layer.*`). Convolutions N(0, 1/fan_in) (the heatmap conv 0.1x
    that), BN scales and running variances U(0.4, 0.6), BN shifts and means N(0, 0.05^2), the heatmap bias 4: the
    activations stay in range through the whole HRNet and every heatmap maximum is positive on real crops (MMPose and
    the official decoder place non-positive maxima differently). The same
    seed gives the same tensors on any CPU (torch's CPU generator), so the fixture tests/fixtures/mmpose_wholebody/
    was made from exactly these weights."""
    gen = torch.Generator().manual_seed(seed)
    model = build_model(zoo.entry_config(name))
    out = OrderedDict()
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            t = value.clone()
        elif value.dim() == 4:
            fan_in = value.shape[1] * value.shape[2] * value.shape[3]
            t = torch.randn(value.shape, generator=gen) / fan_in ** 0.5 * (0.1 if key.startswith("final_") else 1)
        elif key.endswith("running_var") or (key.endswith(".weight") and value.dim() == 1):
            t = 0.4 + 0.2 * torch.rand(value.shape, generator=gen)
        elif key == "final_layer.bias":
            t = 4.0 + 0.1 * torch.randn(value.shape, generator=gen)
        else:  # BN bias, running_mean
            t = 0.05 * torch.randn(value.shape, generator=gen)
        out[(head_prefix if key.startswith("final_layer.") else "backbone.") + key] = t.to(value.dtype)
    return out
