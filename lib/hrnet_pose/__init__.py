"""hrnet_pose: top-down human pose estimation with HRNet (Sun et al., CVPR 2019).

Official configs, CLI and checkpoints of leoxiaobin/deep-high-resolution-net.pytorch work unchanged.
"""

__version__ = "0.1.0"
