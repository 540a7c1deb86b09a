"""`python -m hrnet_pose.serve ...`: the same as `tools/serve.py` (how the serve benchmark starts a server)."""

import sys

from ..errors import run_cli
from .cli import main

sys.exit(run_cli(main))
