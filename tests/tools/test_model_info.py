import glob
import importlib.util
import os
import re

import pytest

from testpaths import REPO


def _tool():
    spec = importlib.util.spec_from_file_location("model_info", os.path.join(REPO, "tools", "model_info.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cfg,params,gflops", [
    ("w32_256x192_adam_lr1e-3.yaml", "28.5M", "7.12"),
    ("w48_384x288_adam_lr1e-3.yaml", "63.6M", "32.88"),
])
def test_official_numbers(cfg, params, gflops, capsys):
    assert _tool().main(["--cfg", os.path.join(REPO, "experiments", "coco", "hrnet", cfg)]) == 0
    out = capsys.readouterr().out
    assert f"({params})" in out
    assert f"GFLOPs: {gflops}" in out


def test_every_attention_variant_reports_its_cost(capsys):
    tool = _tool()
    seen = {}
    for path in sorted(glob.glob(os.path.join(REPO, "experiments", "coco", "hrnet_attn", "*.yaml"))):
        tool.main(["--cfg", path])
        out = capsys.readouterr().out
        params = int(re.search(r"params: ([\d,]+)", out).group(1).replace(",", ""))
        gflops = float(re.search(r"GFLOPs: ([\d.]+)", out).group(1))
        seen[os.path.basename(path)] = (params, gflops)
    assert len(seen) >= 11
    for name, (params, gflops) in seen.items():
        if "softgate_block" in name:  # SOFTGATE blocks are lighter than BASIC ones
            assert params < 28_536_113
        elif "res2net" in name:  # Res2Net's grouped 3x3 convs (scale 4) replace the dense ones: fewer params, FLOPs
            assert params < 28_536_113 and gflops < 7.12, name
        elif "scconv" in name:  # SCConv's four half-width 3x3 convs hold a dense conv's weights (plus BN), and one
            # of them runs on the 1/r pooled map: more params, fewer FLOPs than plain
            assert params > 28_536_113 and gflops < 7.12, name
        else:  # every block adds parameters to W32 and costs at least the plain network
            assert params > 28_536_113, name
            assert gflops >= 7.12, name
