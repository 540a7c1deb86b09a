"""Helpers shared by the tests that run the command-line tools: `from clitest import load_tool`.

tests/conftest.py puts this folder on sys.path (as for testpaths). A uniquely named module, not `from conftest import
...`: there are several conftest.py files, and which one such an import finds depends on sys.path.
"""

import importlib.util
import os

from testpaths import REPO

# what every CLI test passes: CPU, no progress bars, no loader workers
CPU_QUIET = ["ENGINE.DEVICE", "cpu", "ENGINE.PROGRESS_BAR", "False", "WORKERS", "0"]


def load_tool(name: str):
    """tools/<name>.py as a module, so a test runs its main([...]) as a user runs the script.

    By path: a module called `test` would clash with the standard library's `test` package."""
    spec = importlib.util.spec_from_file_location(f"hrnet_pose_tools_{name}", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
