"""Print parameters and GFLOPs (official convention: conv multiply-adds / 2^30) of a config.

    python tools/model_info.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml [KEY VALUE ...]
"""

import argparse
import sys

from hrnet_pose.config import load_config
from hrnet_pose.errors import run_cli
from hrnet_pose.models import build_model
from hrnet_pose.models.complexity import model_summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="experiment yaml")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    w, h = cfg.MODEL.IMAGE_SIZE
    info = model_summary(build_model(cfg), (h, w))
    attention = cfg.MODEL.EXTRA.ATTENTION.NAME or "none"
    print(f"config: {args.cfg}")
    print(f"input: {w}x{h} (WxH)  attention: {attention}")
    print(f"params: {info['params']:,} ({info['params'] / 1e6:.1f}M)")
    print(f"GFLOPs: {info['gflops']:.2f} (multiply-adds / 2^30, the official README convention)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
