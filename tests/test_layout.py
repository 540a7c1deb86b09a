"""The package's rooms and their import order: every import in lib/hrnet_pose (at module level and inside functions)
points to the same room or a lower one, and no chain of imports comes back to where it started.

A room is a subpackage (`models`, `engine`, ...) or a top-level module (`errors`, `visualization`, ...). The order is
written here, from the ground floor up; rooms on one floor are siblings and may not import each other (engine and
streams and deploy; datasets and evaluation). The README's "Layout" section says the same in words.
"""

import ast
import os
from typing import Dict, List, Set

import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib", "hrnet_pose")

FLOORS = [
    ["__init__", "errors", "fileio"],  # no project imports (errors, atomic writes)
    ["geometry", "keypoints", "config", "download", "devices"],  # affine maths, keypoint sets, the yacs config,
    # file downloads, device names
    ["codecs", "visualization"],  # heatmap encode/decode and flip test; skeleton drawing
    ["models"],  # networks, attention blocks, weight loading, the model-to-heatmaps forward
    ["datasets", "evaluation"],  # data and crops; OKS-NMS, COCO AP, PCK
    ["engine", "streams", "deploy"],  # training + evaluation; frame sources + tracking; ONNX + onnxruntime
    ["apis"],  # the inference product: PoseEstimator, stream estimator, detectors, zoo, demo
    ["serve"],  # the HTTP service over apis; imported only by tools/serve.py (test below)
    ["benchmarks"],  # top floor: only tools/benchmark.py and tools/ablate.py (an ablation measures, as benchmarks do,
    # and trains through engine) import it
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-len(".py")].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _modules() -> Dict[str, str]:
    out = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                out[_module_name(path)] = path
    return out


def _imports(path: str, module: str, known: Set[str]) -> Set[str]:
    """Project modules imported anywhere in the file (`from X import name` counts as X.name when that is a module)."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "hrnet_pose")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "hrnet_pose":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    found.discard(module)
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.fixture(scope="module")
def graph() -> Dict[str, Set[str]]:
    modules = _modules()
    return {m: _imports(p, m, set(modules)) for m, p in modules.items()}


def test_every_room_has_a_floor(graph):
    rooms = {_room(m) for m in graph}
    assert rooms <= set(FLOOR), f"rooms without a floor in FLOORS: {sorted(rooms - set(FLOOR))}"
    assert {"engine", "apis", "deploy", "benchmarks", "streams", "models"} <= rooms


def test_imports_only_point_down(graph):
    wrong = [f"{m} -> {t} ({_room(m)} is on floor {FLOOR[_room(m)]}, {_room(t)} on floor {FLOOR[_room(t)]})"
             for m, targets in sorted(graph.items()) for t in sorted(targets)
             if _room(t) != _room(m) and FLOOR[_room(t)] >= FLOOR[_room(m)]]
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_engine_and_library_stay_below_inference_deployment_and_benchmarks(graph):
    engine = {t for m, ts in graph.items() if _room(m) == "engine" for t in ts}
    assert not {t for t in engine if _room(t) in ("apis", "deploy", "benchmarks")}
    into_benchmarks = {m for m, ts in graph.items() if _room(m) != "benchmarks" for t in ts
                       if _room(t) == "benchmarks"}
    assert not into_benchmarks


def test_serve_is_imported_by_no_other_room(graph):
    """serve/ is an application over apis: only tools/serve.py imports it (the serve benchmark starts it as a
    process), so the library works without its optional web dependencies."""
    into_serve = sorted(f"{m} -> {t}" for m, ts in graph.items() if _room(m) != "serve" for t in ts
                        if _room(t) == "serve")
    assert not into_serve, into_serve


def _cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle as a list of modules (first == last), or [] when there is none."""
    state: Dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def test_no_import_cycle(graph):
    cycle = _cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_an_upward_import_and_a_cycle(graph):
    """The walker sees function-level imports and the checks fail on what they are meant to catch."""
    bad = {m: set(ts) for m, ts in graph.items()}
    bad["hrnet_pose.engine.trainer"].add("hrnet_pose.apis.estimator")
    with pytest.raises(AssertionError):
        test_imports_only_point_down(bad)
    bad = {m: set(ts) for m, ts in graph.items()}
    bad["hrnet_pose.models.foreign_layouts"].add("hrnet_pose.models.weights")
    assert _cycle(bad)
    # function-level imports are found: the demo imports the stream pieces inside its functions
    assert "hrnet_pose.streams.sources" in graph["hrnet_pose.apis.demo"]
