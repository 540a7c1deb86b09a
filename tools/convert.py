"""Convert keypoint labels between Ultralytics YOLO-pose and COCO format (json + keypoint-set yaml).

    python tools/convert.py yolo2coco --data my-pose.yaml --out data/mine
        -> data/mine/train.json, val.json (images stay where they are) and data/mine/<class>.yaml (the keypoint set,
           flip pairs from flip_idx); train with DATASET.TRAIN_ANNOTATIONS data/mine/train.json
           DATASET.TRAIN_IMAGES <the yaml's train folder> (likewise TEST_*), DATASET.KEYPOINT_SET data/mine/<class>.yaml
    python tools/convert.py coco2yolo --ann train.json --images imgs/ --split train --out yolo/ [--keypoint-set s.yaml]
        -> yolo/labels/train/*.txt, yolo/images/train/ (links; --copy to copy) and yolo/data.yaml (kpt_shape,
           flip_idx from the keypoint set, kpt_names); run once per split

CVAT ("COCO Keypoints 1.0") and Label Studio ("COCO") exports need no conversion: point DATASET.TRAIN_ANNOTATIONS at
the json and DATASET.TRAIN_IMAGES at the images (see the README, "Your own keypoints").
"""

import argparse
import logging
import sys

from hrnet_pose.datasets.yolo_pose import coco_to_yolo, yolo_to_coco
from hrnet_pose.errors import run_cli


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    y2c = sub.add_parser("yolo2coco", help="YOLO-pose data yaml + labels -> COCO json per split + keypoint-set yaml")
    y2c.add_argument("--data", required=True, help="the YOLO data yaml (kpt_shape, flip_idx, train/val folders)")
    y2c.add_argument("--out", required=True, help="folder for <split>.json and the keypoint-set yaml")
    c2y = sub.add_parser("coco2yolo", help="one COCO split -> YOLO-pose labels, images and data.yaml")
    c2y.add_argument("--ann", required=True, help="COCO-format keypoint json")
    c2y.add_argument("--images", required=True, help="folder of the json's file_names")
    c2y.add_argument("--split", default="train", help="split name: labels/<split>, images/<split> (default train)")
    c2y.add_argument("--out", required=True, help="YOLO dataset folder")
    c2y.add_argument("--keypoint-set", default="", help="keypoint-set yaml: names and flip_idx (default: the json's)")
    c2y.add_argument("--category", default="", help="category name when the json has several keypoint categories")
    c2y.add_argument("--copy", action="store_true", help="copy the images instead of linking them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "yolo2coco":
        written = yolo_to_coco(args.data, args.out)
    else:
        written = coco_to_yolo(args.ann, args.images, args.out, args.split, args.keypoint_set, args.category,
                               link=not args.copy)
    for what, path in written.items():
        logging.info("wrote %s: %s", what, path)
    return written


if __name__ == "__main__":
    sys.exit(run_cli(main))
