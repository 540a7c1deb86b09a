"""Code health of the library: no function in lib/hrnet_pose is longer than MAX_FUNCTION_LINES.

A function's length counts from its `def` line to its last line, docstring, comments and blank lines included
(decorators not). A long function is a sign of several jobs in one place: split it by responsibility into named
helpers, with its behaviour pinned by a test first.
"""

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

LIB = Path(__file__).resolve().parents[1] / "lib" / "hrnet_pose"
MAX_FUNCTION_LINES = 60


def _functions(node: ast.AST, prefix: str = "") -> Iterator[Tuple[str, ast.AST]]:
    """(qualified name, node) of every function and method under `node`, nested ones included."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield name, child
            yield from _functions(child, f"{name}.")
        else:
            yield from _functions(child, prefix)


def long_functions(root: Path, limit: int) -> List[str]:
    """'file:line name (N lines)' for every function under `root` longer than `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, fn in _functions(tree):
            length = fn.end_lineno - fn.lineno + 1
            if length > limit:
                found.append(f"{path.relative_to(root.parent)}:{fn.lineno} {name} ({length} lines)")
    return found


def test_no_function_is_longer_than_the_limit():
    too_long = long_functions(LIB, MAX_FUNCTION_LINES)
    assert not too_long, (f"{len(too_long)} function(s) over {MAX_FUNCTION_LINES} lines; split them by "
                          "responsibility:\n" + "\n".join(too_long))


def test_the_check_sees_methods_nested_functions_and_the_whole_length(tmp_path):
    source = (
        "def at_limit():\n"  # line 1: 3 lines, not reported
        "    x = 1\n"
        "    return x\n"
        "class A:\n"
        "    def method(self):\n"  # line 5: 4 lines with its docstring
        "        \"\"\"doc\"\"\"\n"
        "        x = 1\n"
        "        return x\n"
        "def outer():\n"  # line 9: 6 lines, and inner (line 10) 4
        "    def inner():\n"
        "        x = 1\n"
        "        y = 2\n"
        "        return x + y\n"
        "    return inner\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(source)
    assert long_functions(tmp_path / "pkg", 3) == [
        "pkg/m.py:5 A.method (4 lines)", "pkg/m.py:9 outer (6 lines)", "pkg/m.py:10 outer.inner (4 lines)"]
