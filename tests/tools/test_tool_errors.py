"""tools/benchmark.py and tools/model_info.py answer a user error as the other tools do: one `error:` line on
stderr, exit status 2, no traceback (hrnet_pose.errors.run_cli), in a fresh interpreter as a user runs them."""

import os
import subprocess
import sys

import pytest

from testpaths import QUICKSTART_YAML, REPO


@pytest.mark.parametrize("tool,args,message", [
    ("model_info.py", ["--cfg", "no_such.yaml"], "error: config file not found: no_such.yaml"),
    ("benchmark.py", ["--cfg", "no_such.yaml", "--mode", "cpu"], "error: config file not found: no_such.yaml"),
    ("benchmark.py", ["--cfg", QUICKSTART_YAML, "--mode", "int8"], "error: --mode int8 needs trained weights"),
])
def test_user_errors_are_one_line_and_status_2(tool, args, message):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", tool)] + args, capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0].startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr
