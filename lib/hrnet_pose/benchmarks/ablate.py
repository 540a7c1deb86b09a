"""Block ablation behind `tools/ablate.py`: train and evaluate variants of one base config under identical settings
(the same seeds, epochs, data and overrides; only the block differs) and write one table of accuracy, cost and speed.

Per variant, once: parameters and GFLOPs (official convention, `models.complexity`) and inference latency in PyTorch
and onnxruntime at each `--batch` on the CPU (`benchmarks.models.compare_models`: exported to a temporary .onnx,
median of `iters` calls, the same threads for both runtimes), plus PyTorch on the training device when that is a GPU.
Per (variant, seed): a full training run (`engine.trainer.Trainer`, AUTO_RESUME on) in a child process of its own,
so that its peak memory is its own (peak RSS of the training process on CPU, `torch.cuda.max_memory_allocated` on a
GPU) and a crash or a kill loses at most the current epoch. It reports the last validated AP (the final epoch) and
the training samples/s (median over epochs, data loading included).

Resumable: every finished job is recorded in `<out>/ablation.json` and the table `<out>/ablation.md` is rewritten
after each (both atomically, `hrnet_pose.fileio`); a rerun with the same settings skips what is recorded and resumes
an interrupted training run from its last epoch checkpoint. A rerun with other settings (base config, overrides,
seeds' settings) in the same folder is an error rather than a mixed table. Failed runs are recorded with the
reason, shown in the table, and retried by the next run.
Jobs run measurements first, then seed by seed over all variants, so a partial table has every variant's first seed
before any second one.
"""

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..config import load_config
from ..errors import UserError
from ..fileio import atomic_write_text, write_json_atomic
from ..models.attention import list_attentions
from .ablate_table import format_ablation_table

logger = logging.getLogger(__name__)

PROGRESS_NAME = "ablation.json"
TABLE_NAME = "ablation.md"
SPECIAL_VARIANTS = ("plain", "softgate_block")
_LIB_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class AblationError(UserError):
    """A bad variant name, or an output folder that holds a table made with other settings."""


@dataclass
class Variant:
    """A block variant: its name and the config values that make it (MODEL.EXTRA.ATTENTION, STAGEx.BLOCK)."""

    name: str
    attention: Dict[str, Any] = field(default_factory=dict)
    block: str = ""

    def overrides(self) -> Dict[str, Any]:
        extra: Dict[str, Any] = {"ATTENTION": dict(self.attention)}
        if self.block:
            extra.update({f"STAGE{i}": {"BLOCK": self.block} for i in (2, 3, 4)})
        return {"MODEL": {"EXTRA": extra}}


def parse_variant(spec: str) -> Variant:
    """`plain`, `softgate_block` (STAGE2-4 BLOCK: SOFTGATE), a registered block name (MODEL.EXTRA.ATTENTION.NAME,
    the base config's STAGES/BRANCHES/KWARGS), or a variant yaml such as experiments/coco/hrnet_attn/*.yaml (its
    ATTENTION section and STAGE2-4 BLOCK are taken; the rest of it is ignored: the base config rules)."""
    if spec.endswith((".yaml", ".yml")):
        if not os.path.isfile(spec):
            raise AblationError(f"variant yaml not found: {spec}")
        cfg = load_config(spec)
        att = cfg.MODEL.EXTRA.ATTENTION
        block = cfg.MODEL.EXTRA.STAGE4.BLOCK
        attention = {"NAME": att.NAME, "STAGES": list(att.STAGES), "BRANCHES": list(att.BRANCHES),
                     "KWARGS": _plain(att.KWARGS)}
        name = att.NAME or ("softgate_block" if block == "SOFTGATE" else "plain")
        return Variant(name, attention, block if block == "SOFTGATE" else "")
    key = spec.strip().lower()
    if key == "plain":
        return Variant("plain", {"NAME": ""})
    if key == "softgate_block":
        return Variant("softgate_block", {"NAME": ""}, "SOFTGATE")
    if key in list_attentions():
        return Variant(key, {"NAME": key})
    raise AblationError(f"unknown variant {spec!r}; valid: {', '.join(SPECIAL_VARIANTS + tuple(list_attentions()))}, "
                        "'all', or a variant yaml (experiments/coco/hrnet_attn/*.yaml)")


def parse_variants(specs: Sequence[str]) -> List[Variant]:
    """`all` expands to plain, softgate_block and every registered block; duplicates are an error."""
    names = [s for spec in specs for s in (list(SPECIAL_VARIANTS) + list_attentions() if spec == "all" else [spec])]
    variants = [parse_variant(s) for s in names]
    seen = [v.name for v in variants]
    dup = sorted({n for n in seen if seen.count(n) > 1})
    if dup:
        raise AblationError(f"variants named more than once: {dup}")
    if not variants:
        raise AblationError("no variants given")
    return variants


def _plain(node: Any) -> Any:
    """A CfgNode as plain dicts/lists (for JSON and for yaml dumps)."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


def variant_config(base_cfg: str, opts: Sequence[str], variant: Variant, seed: Optional[int] = None,
                   out_dir: str = "") -> Any:
    """The frozen config of one variant (and seed): base yaml, then `opts`, then the variant, then the run's own
    seed and output folders."""
    cfg = load_config(base_cfg, opts, freeze=False)
    cfg.merge_from_other_cfg(type(cfg)(variant.overrides(), new_allowed=True))
    if variant.block:  # another residual block: ImageNet stage weights have no place in it; stem and layer1 still load
        layers = list(cfg.MODEL.EXTRA.PRETRAINED_LAYERS)
        cfg.MODEL.EXTRA.PRETRAINED_LAYERS = [name for name in layers if not name.startswith("stage")]
    cfg.DATA_DIR = ""  # already joined onto DATASET.ROOT by load_config; not again when the worker reloads it
    if seed is not None:
        cfg.ENGINE.SEED = int(seed)
        cfg.OUTPUT_DIR, cfg.LOG_DIR = os.path.join(out_dir, "output"), os.path.join(out_dir, "log")
        cfg.AUTO_RESUME = True
    return load_config(cfg)


def _settings(base_cfg: str, opts: Sequence[str], cfg: Any, latency: Dict[str, Any]) -> Dict[str, Any]:
    """What must be equal between two runs for their rows to share a table (variants and seeds may be added)."""
    w, h = cfg.MODEL.IMAGE_SIZE
    return {"latency": latency, "base_cfg": os.path.abspath(base_cfg), "opts": [str(o) for o in opts],
            "epochs": int(cfg.TRAIN.END_EPOCH) - int(cfg.TRAIN.BEGIN_EPOCH), "batch": int(cfg.TRAIN.BATCH_SIZE_PER_GPU),
            "dataset": f"{cfg.DATASET.DATASET} {cfg.DATASET.TRAIN_SET}/{cfg.DATASET.TEST_SET}",
            "protocol": f"{'GT boxes' if cfg.TEST.USE_GT_BBOX else 'detector boxes'}, flip "
                        f"{'on' if cfg.TEST.FLIP_TEST else 'off'}, decoder {cfg.CODEC.DECODER}, input {w}x{h}"}


class Ablation:
    """The jobs of one ablation and their record in `out_dir` (see the module docstring)."""

    def __init__(self, base_cfg: str, variants: Sequence[Variant], seeds: Sequence[int], out_dir: str,
                 opts: Sequence[str] = (), batches: Sequence[int] = (1, 8), threads: int = 0, iters: int = 10,
                 python: str = sys.executable) -> None:
        self.base_cfg, self.opts, self.out_dir = base_cfg, list(opts), out_dir
        self.variants, self.seeds = list(variants), [int(s) for s in seeds]
        self.batches, self.threads, self.iters, self.python = list(batches), int(threads), int(iters), python
        if not self.seeds:
            raise AblationError("no seeds given")
        self.progress_path = os.path.join(out_dir, PROGRESS_NAME)
        self.table_path = os.path.join(out_dir, TABLE_NAME)
        cfg = variant_config(base_cfg, self.opts, self.variants[0])
        self.device = str(cfg.ENGINE.DEVICE)
        latency = {"batches": self.batches, "threads": self.threads, "iters": self.iters}
        self.record = self._load(_settings(base_cfg, self.opts, cfg, latency))

    def _load(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        if os.path.isfile(self.progress_path):
            with open(self.progress_path, encoding="utf-8") as f:
                record = json.load(f)
            if record.get("settings") != settings:
                raise AblationError(
                    f"{self.progress_path} holds an ablation with other settings ({record.get('settings')}); "
                    f"these are {settings}. Use another --out folder, or delete it to start over")
            logger.info("resuming %s: %d runs and %d measurements recorded", self.progress_path,
                        len(record["runs"]), len(record["measures"]))
            return record
        return {"settings": settings, "measures": {}, "runs": {}}

    def _save(self) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        write_json_atomic(self.record, self.progress_path, indent=1)
        atomic_write_text(self.table(), self.table_path)

    def table(self) -> str:
        return format_ablation_table(self.record, [v.name for v in self.variants], self.seeds)

    def run(self) -> str:
        """Run every job not yet recorded (failed ones again); returns the markdown table."""
        self.record["variants"] = {v.name: v.overrides() for v in self.variants}
        self._save()
        for variant in self.variants:
            if variant.name not in self.record["measures"]:
                self.record["measures"][variant.name] = self._measure(variant)
                self._save()
        for seed in self.seeds:
            for variant in self.variants:
                key = f"{variant.name}/seed{seed}"
                if "ap" in self.record["runs"].get(key, {}):
                    logger.info("%s: recorded, skipped", key)
                    continue
                self.record["runs"][key] = self._train(variant, seed, key)
                self._save()
        return self.table()

    def failures(self) -> List[str]:
        return [k for k, r in self.record["runs"].items() if "error" in r]

    def _measure(self, variant: Variant) -> Dict[str, Any]:
        import torch

        from ..models import build_model
        from .model_speed import benchmark_model
        from .models import compare_models

        cfg = variant_config(self.base_cfg, self.opts, variant)
        logger.info("%s: params, GFLOPs and latency", variant.name)
        rows = compare_models([(variant.name, cfg)], batches=self.batches, threads=self.threads, iters=self.iters)
        out = {"params": rows[0]["params"], "gflops": rows[0]["gflops"], "threads": rows[0]["threads"],
               "latency_ms": {f"{r['runtime']} cpu b{r['batch']}": r["ms_per_iter"] for r in rows}}
        device = torch.device(self.device) if self.device else torch.device("cuda" if torch.cuda.is_available()
                                                                             else "cpu")
        if device.type == "cuda":
            w, h = cfg.MODEL.IMAGE_SIZE
            model = build_model(cfg).eval()
            for b in self.batches:
                out["latency_ms"][f"torch {device.type} b{b}"] = benchmark_model(
                    model, (h, w), b, device, iters=self.iters)["ms_per_iter"]
        return out

    def _train(self, variant: Variant, seed: int, key: str) -> Dict[str, Any]:
        run_dir = os.path.join(self.out_dir, "runs", variant.name, f"seed{seed}")
        os.makedirs(run_dir, exist_ok=True)
        cfg = variant_config(self.base_cfg, self.opts, variant, seed, run_dir)
        cfg_path = os.path.join(run_dir, f"{variant.name}.yaml")
        atomic_write_text(cfg.dump(), cfg_path)
        result_path = os.path.join(run_dir, "result.json")
        if os.path.exists(result_path):
            os.remove(result_path)
        log_path = os.path.join(run_dir, "worker.log")
        logger.info("%s: training (%s)", key, run_dir)
        start = time.time()
        # the worker imports this very library, wherever the parent found it (an editable install or PYTHONPATH)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_LIB_DIR, env.get("PYTHONPATH", "")) if p)
        with open(log_path, "a", encoding="utf-8") as log:
            rc = subprocess.call([self.python, "-m", "hrnet_pose.benchmarks.ablate_worker", cfg_path, result_path],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
        if rc != 0 or not os.path.isfile(result_path):
            with open(log_path, encoding="utf-8", errors="replace") as f:
                tail = [line.strip() for line in f.readlines()[-3:]]
            logger.error("%s failed (exit %d, log %s): %s", key, rc, log_path, " | ".join(tail))
            return {"error": f"exit {rc}: {tail[-1] if tail else ''}", "log": log_path}
        with open(result_path, encoding="utf-8") as f:
            result = json.load(f)
        result["wall_s"] = time.time() - start
        logger.info("%s: AP %.4f, %.1f samples/s", key, result["ap"], result["samples_per_s"])
        return result

