"""Draw the ground truth of a COCO-format keypoint json onto its images (to check a dataset or a custom keypoint set).

    python tools/vis_dataset.py --ann data/coco/annotations/person_keypoints_val2017.json \\
        --images data/coco/images/val2017 --out-dir vis/val2017 --limit 20 [--keypoint-set my_set.yaml] [--draw-bbox]

Writes one jpg per image that has a non-crowd annotation with keypoints. Keypoints labelled occluded (v=1) are drawn
with a dark centre; --kpt-thr 0.75 hides them (visible v=2 keypoints score 1.0, occluded 0.5).
"""

import argparse
import logging
import sys

from hrnet_pose.datasets.vis_dataset import visualize_coco_dataset
from hrnet_pose.errors import run_cli


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ann", required=True, help="COCO keypoints annotation json, or an official MPII annot/<set>.json")
    parser.add_argument("--images", required=True, help="folder of the images named in the json's file_name")
    parser.add_argument("--out-dir", required=True, help="where the drawn jpgs go (created if needed)")
    parser.add_argument("--keypoint-set", default="", help="'' for COCO-17, or a keypoint-set yaml")
    parser.add_argument("--kpt-thr", type=float, default=0.3,
                        help="draw keypoints scoring >= this: visible=1.0, occluded=0.5, unlabelled=0 (default 0.3)")
    parser.add_argument("--draw-bbox", action="store_true", help="also draw the annotation boxes")
    parser.add_argument("--image-ids", type=int, nargs="+", default=None, help="only these image ids")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # the library logs how many images it wrote and where
    visualize_coco_dataset(
        args.ann, args.images, args.out_dir, keypoint_set=args.keypoint_set, kpt_thr=args.kpt_thr,
        draw_bbox=args.draw_bbox, image_ids=args.image_ids, limit=args.limit,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
