"""Write the synthetic person-keypoint dataset (see data/README.md): COCO format (17 keypoints, default) or the
official MPII format (16 joints, annot/*.json + gt_valid.mat) with --format mpii, or the synthetic kites with
--format kites (6 keypoints, a custom layout: kites_{train,val}.json + images/{train,val}; "Your own keypoints").

    python tools/make_synthetic.py --out data/synthetic --num-train 2000 --num-val 200 --seed 0
    python tools/make_synthetic.py --format mpii --out data/synthetic_mpii --num-train 400 --num-val 80
    python tools/make_synthetic.py --format kites --out data/kites --num-train 600 --num-val 100
"""

import argparse
import logging
import sys

from hrnet_pose.datasets.synthetic import generate_synthetic_coco
from hrnet_pose.datasets.synthetic_kites import generate_synthetic_kites
from hrnet_pose.datasets.synthetic_mpii import generate_synthetic_mpii
from hrnet_pose.errors import run_cli


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (coco: annotations/, images/, "
                        "person_detection_results/; mpii: annot/, images/)")
    parser.add_argument("--format", choices=("coco", "mpii", "kites"), default="coco",
                        help="coco: COCO keypoints json (17 keypoints); mpii: the official MPII layout (16 joints, "
                             "splits train and valid, gt_valid.mat for PCKh); kites: 6-keypoint kites in a custom "
                             "layout (experiments/synthetic/kites.yaml)")
    parser.add_argument("--num-train", type=int, default=2000, help="images in the 'train' split")
    parser.add_argument("--num-val", type=int, default=200, help="images in the 'val' split ('valid' for mpii)")
    parser.add_argument("--seed", type=int, default=0, help="same seed -> identical dataset")
    parser.add_argument("--image-size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"))
    parser.add_argument("--max-people", type=int, default=None,
                        help="1..N annotated people per image (default 3 for coco, 2 for mpii)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.format == "kites":
        generate_synthetic_kites(args.out, args.num_train, args.num_val, seed=args.seed,
                                 image_size=tuple(args.image_size), max_kites=args.max_people or 2)
    elif args.format == "mpii":
        generate_synthetic_mpii(args.out, args.num_train, args.num_val, seed=args.seed,
                                image_size=tuple(args.image_size), max_people=args.max_people or 2)
    else:
        generate_synthetic_coco(args.out, args.num_train, args.num_val, seed=args.seed,
                                image_size=tuple(args.image_size), max_people=args.max_people or 3)


if __name__ == "__main__":
    sys.exit(run_cli(main))
