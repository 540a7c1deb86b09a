"""Train and evaluate block variants of one config under identical settings and write one table (AP mean and spread
over seeds, params, GFLOPs, training samples/s, PyTorch and onnxruntime latency at batch 1 and 8, peak memory).
Resumable: rerun the same command after an interruption (hrnet_pose.benchmarks.ablate).

Every block on the synthetic quickstart set (a small synthetic task, not COCO), 2 seeds:

    python tools/ablate.py --cfg experiments/synthetic/quickstart.yaml --variants all --seeds 0 1 \
        --out output/ablation_quickstart [KEY VALUE ...]

The COCO version on the official W32 recipe (one GPU per run; variants from the shipped yamls):

    python tools/ablate.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml \
        --variants plain experiments/coco/hrnet_attn/*.yaml --seeds 0 1 --out output/ablation_w32 ENGINE.DEVICE cuda

Variants: plain, softgate_block, any registered block name (MODEL.EXTRA.ATTENTION.NAME with the base config's
STAGES/BRANCHES/KWARGS), a variant yaml (its MODEL.EXTRA.ATTENTION and STAGE BLOCK), or all.
Writes <out>/ablation.md and <out>/ablation.json; prints the table.
"""

import argparse
import logging
import sys

from hrnet_pose.benchmarks.ablate import Ablation, parse_variants
from hrnet_pose.errors import UserError, run_cli


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="base experiment yaml")
    parser.add_argument("--variants", nargs="+", required=True, help="variant names or yamls, or 'all'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="ENGINE.SEED of each run (default: 0)")
    parser.add_argument("--out", required=True, help="folder of the table, its record and the runs")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="latency batch sizes (default: 1 8)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads of both runtimes for latency "
                                                                 "(default: torch's own)")
    parser.add_argument("--iters", type=int, default=10, help="timed calls per latency figure (median)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the base config, "
                                                              "applied to every variant alike")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ablation = Ablation(args.cfg, parse_variants(args.variants), args.seeds, args.out, opts=args.opts,
                        batches=args.batch, threads=args.threads, iters=args.iters)
    print(ablation.run())
    failed = ablation.failures()
    if failed:
        raise UserError(f"{len(failed)} run(s) failed: {', '.join(failed)} (logs under {args.out}/runs; rerun the "
                        "same command to retry them)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
