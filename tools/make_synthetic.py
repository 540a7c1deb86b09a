"""Write the synthetic COCO-format person-keypoint dataset (see data/README.md).

    python tools/make_synthetic.py --out data/synthetic --num-train 2000 --num-val 200 --seed 0
"""

import argparse
import logging
import sys

from hrnet_pose.datasets.synthetic import generate_synthetic_coco
from hrnet_pose.errors import run_cli


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (annotations/, images/, person_detection_results/)")
    parser.add_argument("--num-train", type=int, default=2000, help="images in the 'train' split")
    parser.add_argument("--num-val", type=int, default=200, help="images in the 'val' split")
    parser.add_argument("--seed", type=int, default=0, help="same seed -> identical dataset")
    parser.add_argument("--image-size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"))
    parser.add_argument("--max-people", type=int, default=3, help="1..N annotated people per image")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generate_synthetic_coco(args.out, args.num_train, args.num_val, seed=args.seed, image_size=tuple(args.image_size),
                            max_people=args.max_people)


if __name__ == "__main__":
    sys.exit(run_cli(main))
