"""Output layout, log files and TensorBoard writers of train.py / test.py, in the official code's layout (its
`create_logger` in lib/utils/utils.py).

    OUTPUT_DIR/<dataset>/<model>/<cfg stem>/   checkpoint.pth, model_best.pth, final_state.pth, results/,
                                               <cfg stem>_<YYYY-mm-dd-HH-MM>_<phase>.log, config.yaml
    LOG_DIR/<dataset>/<model>/<cfg stem>_<YYYY-mm-dd-HH-MM>/   TensorBoard events

Only rank 0 writes files; other ranks log warnings and errors to the console. A record logged with
`extra=FILE_ONLY` (the config dump) goes to the log file but not to the console, so the console shows what happens
instead of 250 lines of yaml.
"""

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..fileio import atomic_write_text

_HANDLER_TAG = "_hrnet_pose_handler"
FILE_ONLY = {"file_only": True}  # logger.info(..., extra=FILE_ONLY): log file only


class _Formatter(logging.Formatter):
    """`fmt` as given; warnings and errors get their level before the message, to stand out among progress lines."""

    def __init__(self, fmt: str):
        super().__init__(fmt)
        self._loud = logging.Formatter(fmt.replace("%(message)s", "%(levelname)s: %(message)s"))

    def format(self, record: logging.LogRecord) -> str:
        return self._loud.format(record) if record.levelno >= logging.WARNING else super().format(record)


class _NotFileOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


@dataclass(frozen=True)
class RunPaths:
    output_dir: str
    tb_dir: str
    log_file: str
    cfg_name: str


def progress_bar_enabled(requested: bool, stream: Any = None) -> bool:
    """tqdm progress bars only on a terminal: ENGINE.PROGRESS_BAR and the bar's stream (stderr) is a tty. Redirected
    to a file (`train.py ... > run.log 2>&1`, a job scheduler), the bar's carriage-return frames would fill the file;
    the log lines every PRINT_FREQ iterations say the progress there instead."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(requested) and bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def run_paths(cfg: Any, cfg_path: str, phase: str, time_str: Optional[str] = None) -> RunPaths:
    """Official folder names: dataset (with ':' made '_'), MODEL.NAME and the config file's stem."""
    dataset = str(cfg.DATASET.DATASET)
    if cfg.DATASET.HYBRID_JOINTS_TYPE:
        dataset = f"{dataset}_{cfg.DATASET.HYBRID_JOINTS_TYPE}"
    dataset = dataset.replace(":", "_")
    model = str(cfg.MODEL.NAME)
    cfg_name = os.path.basename(cfg_path).split(".")[0]
    time_str = time_str or time.strftime("%Y-%m-%d-%H-%M")
    output_dir = os.path.join(cfg.OUTPUT_DIR, dataset, model, cfg_name)
    tb_dir = os.path.join(cfg.LOG_DIR, dataset, model, f"{cfg_name}_{time_str}")
    log_file = os.path.join(output_dir, f"{cfg_name}_{time_str}_{phase}.log")
    return RunPaths(output_dir=output_dir, tb_dir=tb_dir, log_file=log_file, cfg_name=cfg_name)


def setup_logging(log_file: Optional[str], is_main: bool, rank: int = 0) -> None:
    """Root logger: console (and `log_file`) at INFO on rank 0, WARNING elsewhere. Safe to call again (tests)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_TAG, False):
            root.removeHandler(h)
            h.close()
    fmt = _Formatter("%(asctime)s %(message)s" if rank == 0 else f"[rank {rank}] %(asctime)s %(message)s")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    console.addFilter(_NotFileOnly())
    handlers = [console]
    if is_main and log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
        handlers[-1].setFormatter(fmt)
    for h in handlers:
        setattr(h, _HANDLER_TAG, True)
        h.setLevel(logging.INFO if is_main else logging.WARNING)
        root.addHandler(h)
    root.setLevel(logging.INFO)


def close_logging() -> None:
    """Detach and close the handlers `setup_logging` added (so a log file is complete when main() returns)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_TAG, False):
            root.removeHandler(h)
            h.close()


def log_config(cfg: Any) -> None:
    """The resolved config into the log file only (see FILE_ONLY)."""
    logging.getLogger(__name__).info("config:\n%s", cfg.dump(), extra=FILE_ONLY)


def dump_config(cfg: Any, output_dir: str, name: str = "config.yaml") -> str:
    """The resolved config (after yaml, CLI opts and DATA_DIR joins) as yaml, written atomically."""
    path = os.path.join(output_dir, name)
    atomic_write_text(cfg.dump(), path)
    return path


class TensorBoard:
    """A SummaryWriter on rank 0 when ENGINE.TENSORBOARD, else a no-op with the same methods."""

    def __init__(self, log_dir: str, enabled: bool):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=log_dir)

    def scalars(self, values: Dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def image(self, tag: str, image_hwc: Any, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image_hwc, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
