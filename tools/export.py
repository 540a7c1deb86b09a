"""Export an HRNet pose network to ONNX and check it against PyTorch with onnxruntime:

    python tools/export.py --weights hrnet_w32_256x192_udp --out hrnet_w32_udp.onnx
    python tools/export.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --weights model.pth --out m.onnx
    python tools/export.py --cfg EXPERIMENT.yaml --weights none --out random.onnx [KEY VALUE ...]

The graph maps normalised crops [N, 3, H, W] to heatmaps [N, K, H/4, W/4] with a dynamic batch (opset >= 17);
flip test and decoding stay outside it. The config (yaml) is stored in the file's metadata, and so is a custom keypoint
set's yaml (DATASET.KEYPOINT_SET), so the file runs where that yaml is not. After writing, the export
runs in onnxruntime on random inputs at each --batch size and the largest heatmap difference to PyTorch is printed.
"""

import argparse
import logging
import os
import sys
import time
from typing import List, Optional, Sequence

from hrnet_pose.apis import zoo
from hrnet_pose.deploy.export import check_onnx, export_onnx
from hrnet_pose.deploy.onnx_backend import CONFIG_KEY, KEYPOINT_SET_KEY, ZOO_KEY
from hrnet_pose.config import load_config
from hrnet_pose.errors import UserError, run_cli
from hrnet_pose.models import build_model, load_weights


def _batch_sizes(text: str) -> List[int]:
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--batch takes positive integers separated by commas (e.g. 1,8), "
                                         f"got {text!r}")
    return sizes


def main(argv: Optional[Sequence[str]] = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", "--config", dest="cfg", default="",
                        help="experiment yaml (optional when --weights is a model zoo name)")
    parser.add_argument("--weights", required=True,
                        help="checkpoint .pth, a model zoo name (" + ", ".join(sorted(zoo.ZOO)[:2]) + ", ...), "
                             "or 'none' for random weights")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--batch", type=_batch_sizes, default=[1, 4],
                        help="comma-separated batch sizes of the onnxruntime check (default 1,4)")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch axis to 1 instead of dynamic")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    name = args.weights if zoo.is_zoo_name(args.weights) else ""
    if args.cfg:
        cfg = load_config(args.cfg, args.opts)
        if name:
            cfg = zoo.merge_entry(cfg, name)
    elif name:
        cfg = load_config(zoo.entry_config(name), args.opts)
    else:
        raise UserError("--cfg is needed unless --weights is a model zoo name "
                        f"(one of: {', '.join(sorted(zoo.ZOO))})")

    model = build_model(cfg).eval()
    if args.weights.lower() == "none":
        logging.warning("--weights none: exporting random weights (for testing the export only)")
    else:
        weights = zoo.resolve_weights(args.weights)
        load_weights(model, weights)
        print(f"weights: {weights}")
    w, h = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    start = time.perf_counter()
    metadata = {CONFIG_KEY: cfg.dump(), ZOO_KEY: name}
    kpt_set = str(cfg.DATASET.KEYPOINT_SET)
    if kpt_set.endswith((".yaml", ".yml")) and os.path.isfile(kpt_set):  # a custom set travels with the file
        with open(kpt_set) as f:
            metadata[KEYPOINT_SET_KEY] = f.read()
    export_onnx(model, args.out, (w, h), opset=args.opset, dynamic_batch=not args.static_batch, metadata=metadata)
    print(f"wrote {args.out}: input [{'N' if not args.static_batch else 1}, 3, {h}, {w}], opset {args.opset}, "
          f"{time.perf_counter() - start:.1f} s")
    if args.no_check:
        return float("nan")
    sizes = args.batch  # a static-batch graph runs larger batches in chunks
    diff, scale = check_onnx(args.out, model, sizes, return_scale=True)
    print(f"onnxruntime vs PyTorch: max |heatmap difference| = {diff:.3g} = {diff / max(scale, 1e-12):.2g} of the "
          f"heatmaps' scale {scale:.3g} (batch sizes {sizes}, random inputs)")
    return diff


if __name__ == "__main__":
    sys.exit(run_cli(main))
