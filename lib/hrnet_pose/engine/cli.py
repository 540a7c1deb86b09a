"""The official command line shared by tools/train.py and tools/test.py: `--cfg`, trailing `KEY VALUE` opts,
`--modelDir`, `--logDir`, `--dataDir` -> frozen config -> `entry(cfg, cfg_path)`, with the process group torn down
however the run ends. The tools wrap `main` in `hrnet_pose.errors.run_cli`, which turns user errors into one message
and exit status 2 (`--debug` shows the traceback)."""

import argparse
from typing import Any, Callable, Optional, Sequence

from ..config import add_official_args, get_cfg, update_config
from ..errors import DEBUG_ENV
from .distributed import cleanup


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = add_official_args(argparse.ArgumentParser(description=description))
    # run_cli strips --debug before parsing; declared here so that --help lists it (and a direct main() accepts it)
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of configuration, file and checkpoint errors ({DEBUG_ENV}=1 "
                             "does the same)")
    return parser


def run_official_cli(entry: Callable[[Any, str], Any], description: str,
                     argv: Optional[Sequence[str]] = None) -> Any:
    args = build_parser(description).parse_args(argv)
    cfg = update_config(get_cfg(), args)
    try:
        return entry(cfg, args.cfg)
    finally:
        cleanup()
