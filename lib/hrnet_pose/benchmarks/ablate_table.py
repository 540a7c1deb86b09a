"""The ablation table (markdown) from an ablation record (`benchmarks.ablate`): one row per variant with the AP mean
and spread over the finished seeds, the mean's difference to the plain network's (when 'plain' is among them), params, GFLOPs, training samples/s, inference latency per (runtime, device,
batch) and peak training memory; unfinished cells show '...', failed runs 'failed'."""

import os
import statistics
from typing import Any, Dict, List, Sequence

PENDING = "..."


def _ap_cell(aps: List[float], n_seeds: int, failed: int) -> str:
    if not aps:
        return "failed" if failed else PENDING
    mean = statistics.fmean(aps)
    spread = f" ± {statistics.stdev(aps):.3f}" if len(aps) > 1 else ""
    note = f" ({len(aps)}/{n_seeds} seeds{', ' + str(failed) + ' failed' if failed else ''})" \
        if len(aps) < n_seeds else ""
    return f"{mean:.3f}{spread}{note}"


def _mean_cell(values: List[float], fmt: str) -> str:
    return fmt.format(statistics.fmean(values)) if values else PENDING


def format_ablation_table(record: Dict[str, Any], variants: Sequence[str], seeds: Sequence[int]) -> str:
    """Markdown table plus a line on how the numbers were made (settings of the record)."""
    latency_cols: List[str] = []
    for m in record["measures"].values():
        latency_cols += [c for c in m["latency_ms"] if c not in latency_cols]
    def aps(name: str) -> List[float]:
        runs = [record["runs"].get(f"{name}/seed{s}", {}) for s in seeds]
        return [r["ap"] for r in runs if "ap" in r]

    base = aps("plain") if "plain" in variants else []
    head = (["variant", "AP (mean ± std over seeds)", "Δ AP vs plain", "params", "GFLOPs", "train samples/s"]
            + [f"{c} (ms)" for c in latency_cols] + ["peak train mem (MB)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in variants:
        runs = [record["runs"].get(f"{name}/seed{s}", {}) for s in seeds]
        done = [r for r in runs if "ap" in r]
        failed = sum("error" in r for r in runs)
        m = record["measures"].get(name)
        delta = f"{statistics.fmean(aps(name)) - statistics.fmean(base):+.3f}" if base and aps(name) else PENDING
        cells = [name, _ap_cell([r["ap"] for r in done], len(seeds), failed), delta,
                 f"{m['params'] / 1e6:.3f}M" if m else PENDING, f"{m['gflops']:.3f}" if m else PENDING,
                 _mean_cell([r["samples_per_s"] for r in done], "{:.1f}")]
        cells += [f"{m['latency_ms'][c]:.1f}" if m and c in m["latency_ms"] else PENDING for c in latency_cols]
        cells.append(_mean_cell([r["peak_mem_mb"] for r in done], "{:.0f}"))
        lines.append("| " + " | ".join(cells) + " |")
    s = record["settings"]
    threads = sorted({m.get("threads") for m in record["measures"].values()})
    kinds = sorted({r["peak_mem_kind"] for r in record["runs"].values() if "peak_mem_kind" in r})
    lines.append("")
    lines.append(f"{s['dataset']}, {s['epochs']} epochs, batch {s['batch']}, seeds {list(seeds)}; AP of the final "
                 f"epoch ({s['protocol']}); base {os.path.relpath(s['base_cfg'])} with {s['opts'] or 'no overrides'}; latency: median "
                 f"ms per call, cpu threads {threads}; peak memory: {', '.join(kinds) or PENDING}.")
    return "\n".join(lines) + "\n"
