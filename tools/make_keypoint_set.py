"""Write the keypoint-set yaml of a COCO-format keypoint file to stdout (or --out), to train on your own keypoints:

    python tools/make_keypoint_set.py data/kites/kites_train.json > kites.yaml
    python tools/make_keypoint_set.py export.json --category kite --out kite.yaml

Names and skeleton come from the file's keypoint category; flip pairs are guessed from left/right in the names (check
them); sigmas are left for you to fill in (the default used without them is stated in the file). A category without
keypoint names (Label Studio's export) gets kp_0 ... kp_<K-1>, K from its annotations. Then train with
DATASET.KEYPOINT_SET kites.yaml and MODEL.NUM_JOINTS <K>.
"""

import argparse
import logging
import sys

from hrnet_pose.datasets.annotations import choose_category, read_keypoint_file
from hrnet_pose.datasets.keypoint_set_yaml import keypoint_set_yaml_from_coco
from hrnet_pose.errors import run_cli
from hrnet_pose.fileio import atomic_write


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ann", help="COCO-format keypoint json")
    parser.add_argument("--category", default="", help="category name when the file has several keypoint categories")
    parser.add_argument("--out", default="", help="write the yaml here instead of stdout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    data = read_keypoint_file(args.ann, args.category)
    category = dict(choose_category(data, args.ann, args.category))
    if not category.get("keypoints"):
        k = max((len(a.get("keypoints") or []) // 3 for a in data["annotations"]), default=0)
        category["keypoints"] = [f"kp_{i}" for i in range(k)]
        logging.warning("%s: category '%s' names no keypoints; wrote kp_0 ... kp_%d (rename them)", args.ann,
                        category.get("name"), k - 1)
    text = keypoint_set_yaml_from_coco(data, category, args.ann)
    if args.out:
        atomic_write(args.out, lambda f: f.write(text))
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
