"""`tools/serve.py` / `hrnet-pose-serve`: flags -> estimator + settings -> uvicorn.

The model flags are the demo's (`--weights` zoo name / .pth / .onnx / none, `--config`, `--det-model`,
`--backend`, ...; `apis.demo.build_estimator` builds both). One model instance per process; `--workers N` starts N
processes (uvicorn's), each loading the model from the same flags, for more cores. Binding to an address other than
loopback without an API key logs a warning.
"""

import argparse
import ipaddress
import json
import logging
import os
import sys
from typing import Any, Optional, Sequence, Tuple

from ..apis.demo import build_estimator
from ..apis.detectors import MAX_PERSONS
from ..apis.stream import DEFAULT_MIN_POSE_SCORE
from ..errors import UserError
from .settings import API_KEY_ENV, ServeSettings

logger = logging.getLogger(__name__)
ARGV_ENV = "HRNET_POSE_SERVE_ARGV"  # how --workers hands the flags to each worker process
WORKER_HEALTHCHECK_S = 120


def _model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (as tools/demo.py)")
    g.add_argument("--config", "--cfg", dest="config", default="", help="experiment yaml (optional with a zoo name)")
    g.add_argument("--weights", default="none", help=".pth, .onnx or model zoo name; 'none' = random weights")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--amp", default="", choices=["", "bf16", "fp16"])
    g.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"])
    g.add_argument("--int8", action="store_true", help="onnxruntime int8 (calibrated on the first crops)")
    g.add_argument("--int8-calib", default="")
    g.add_argument("--det-model", default="auto", help="auto, fasterrcnn, mobilenet, mobilenet320, ssdlite or none "
                                                       "(whole image = 1 person)")
    g.add_argument("--det-runtime", default="auto", choices=["auto", "torch", "onnxruntime"])
    g.add_argument("--det-weights", default="")
    g.add_argument("--bbox-thr", type=float, default=0.5)
    g.add_argument("--nms-thr", type=float, default=0.5)
    g.add_argument("--max-persons", type=int, default=MAX_PERSONS, help="most persons per image")
    g.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="REST default (a request's flip_test overrides it); default the config's TEST.FLIP_TEST")
    g.add_argument("--max-batch", type=int, default=32, help="persons per network call and per request batch")
    g.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ...")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Serve HRNet poses over HTTP: REST, a browser webcam page, WebSocket.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _model_flags(p)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 = every interface: set --api-key)")
    g.add_argument("--port", type=int, default=8000)
    g.add_argument("--workers", type=int, default=1, help="processes, one model each, for more cores")
    g.add_argument("--api-key", default="", help=f"required on every route but /healthz (default ${API_KEY_ENV}; "
                                                 "read when the flags are parsed, never shown by --help)")
    g.add_argument("--cors-origin", default="", help="allow this one browser origin (CORS is off by default)")
    g.add_argument("--max-body-mb", type=float, default=10.0)
    g.add_argument("--max-pixels", type=int, default=40_000_000, help="largest image (width x height, from its "
                                                                     "header, checked before decoding)")
    g.add_argument("--batch-window-ms", type=float, default=5.0, help="how long a request waits for others to batch")
    g.add_argument("--max-queue", type=int, default=64, help="images in flight before 503 + Retry-After")
    g.add_argument("--kpt-thr", type=float, default=0.3, help="default keypoint threshold (visible flags, drawing)")
    g.add_argument("--det-interval", type=int, default=5, help="streams: detect every N frames (and when lost)")
    g.add_argument("--min-pose-score", type=float, default=DEFAULT_MIN_POSE_SCORE,
                   help="streams: mean keypoint score under which a pose counts as lost")
    g.add_argument("--no-detect-on-loss", action="store_true", help="streams: detect on the schedule only")
    g.add_argument("--no-smooth", action="store_true", help="streams: no One Euro smoothing")
    g.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("overrides", nargs="*", help="trailing KEY VALUE config overrides")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    args = build_parser().parse_intermixed_args(argv)
    args.weights = "" if args.weights.strip().lower() in ("", "none") else args.weights
    args.opts = list(args.opts) + list(args.overrides)
    args.boxes = ""  # build_estimator's demo flag: never a boxes file here
    args.api_key = args.api_key or os.environ.get(API_KEY_ENV, "")
    for name, low in (("port", 0), ("workers", 1), ("max_queue", 1), ("max_batch", 1), ("det_interval", 1)):
        if getattr(args, name) < low:
            raise UserError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    return args


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, api_key: str) -> Optional[str]:
    """The warning for serving beyond this machine without a key, None when there is nothing to warn about."""
    if is_loopback(host) or api_key:
        return None
    return (f"serving on {host} without an API key: anyone who can reach this address can use the model; set "
            f"--api-key or ${API_KEY_ENV}")


def model_name(args: argparse.Namespace) -> str:
    if args.weights and not os.path.isfile(args.weights):
        return args.weights  # a zoo name
    if args.weights:
        return os.path.splitext(os.path.basename(args.weights))[0]
    return os.path.splitext(os.path.basename(args.config or "model"))[0] + " (random weights)"


def build_settings(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(
        model_name=model_name(args), model_source={"config": args.config, "weights": args.weights or "none"},
        api_key=args.api_key, cors_origin=args.cors_origin, max_body_bytes=int(args.max_body_mb * (1 << 20)),
        max_pixels=args.max_pixels, max_batch=args.max_batch, batch_window_ms=args.batch_window_ms,
        max_queue=args.max_queue, kpt_thr=args.kpt_thr, det_interval=args.det_interval,
        min_pose_score=args.min_pose_score, detect_on_loss=not args.no_detect_on_loss, smooth=not args.no_smooth)


def build_app(argv: Optional[Sequence[str]] = None) -> Tuple[Any, argparse.Namespace]:
    """(FastAPI app, parsed args) for these flags."""
    from .app import create_app

    args = parse_args(argv)
    return create_app(build_estimator(args), build_settings(args)), args


def app_from_env() -> Any:
    """uvicorn's factory for each `--workers` process: the flags come in $HRNET_POSE_SERVE_ARGV."""
    return build_app(json.loads(os.environ[ARGV_ENV]))[0]


def main(argv: Optional[Sequence[str]] = None) -> int:
    import uvicorn

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warning = bind_warning(args.host, args.api_key)
    if warning:
        logger.warning(warning)
    common = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                  ws_max_size=int(args.max_body_mb * (1 << 20)))  # a WebSocket frame is a body too
    if args.workers > 1:
        os.environ[ARGV_ENV] = json.dumps(argv)
        # a worker importing torch and building the model can miss uvicorn's 5 s health ping on a busy machine and
        # be killed and restarted forever; give it as long as a model load takes
        uvicorn.run("hrnet_pose.serve.cli:app_from_env", factory=True, workers=args.workers,
                    timeout_worker_healthcheck=WORKER_HEALTHCHECK_S, **common)
        return 0
    app, _ = build_app(argv)
    logger.info("serving %s on http://%s:%d/ (page at /, API docs at /docs)", app.state.service.settings.model_name,
                args.host, args.port)
    uvicorn.run(app, **common)
    return 0


def console_main() -> None:
    """The `hrnet-pose-serve` console script: user errors as one line and exit status 2."""
    from ..errors import run_cli

    sys.exit(run_cli(main))
