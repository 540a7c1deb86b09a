"""The official command line shared by tools/train.py and tools/test.py: `--cfg`, trailing `KEY VALUE` opts,
`--modelDir`, `--logDir`, `--dataDir` -> frozen config -> `entry(cfg, cfg_path)`, with the process group torn down
however the run ends."""

import argparse
from typing import Any, Callable, Optional, Sequence

from ..config import add_official_args, get_cfg, update_config
from .distributed import cleanup


def run_official_cli(entry: Callable[[Any, str], Any], description: str,
                     argv: Optional[Sequence[str]] = None) -> Any:
    parser = add_official_args(argparse.ArgumentParser(description=description))
    args = parser.parse_args(argv)
    cfg = update_config(get_cfg(), args)
    try:
        return entry(cfg, args.cfg)
    finally:
        cleanup()
