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
