"""Errors caused by what a user gave us (a config key, a file, a checkpoint, a data layout) and the command-line
wrapper that turns them into one readable message instead of a traceback.

`UserError` is the base of our own such errors. `is_user_error` also recognises the standard exceptions that mean
the same thing (a missing file, a yacs config key error, a ValueError that names a config key). `run_cli(main)` runs a
tool's `main(argv)`: on a user error it prints `error: <first line>` and at most one `hint:` line to stderr and returns
exit status 2; `--debug` on the command line or `HRNET_POSE_DEBUG=1` re-raises instead, with the full traceback.

This module imports nothing heavy (no torch), so any layer of the package can raise these errors.
"""

import os
import re
import sys
import traceback
from typing import Any, Callable, List, Optional, Sequence

__all__ = ["UserError", "CheckpointMismatchError", "is_user_error", "run_cli", "format_user_error", "DEBUG_ENV", "EXIT_USER_ERROR"]

DEBUG_ENV = "HRNET_POSE_DEBUG"
DEBUG_FLAG = "--debug"
EXIT_USER_ERROR = 2  # the argparse convention for "the command line was wrong"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

# A config key as our messages write it: MODEL.NUM_JOINTS, ENGINE.AMP, STAGE2.FUSE_METHOD, LOSS.TOPK=9.
_CONFIG_KEY = re.compile(r"\b[A-Z][A-Z0-9_]*(?:\.[A-Z][A-Z0-9_]*)+\b")
# Messages of yacs' own merge errors, for code that merges without hrnet_pose.config's wrappers.
_YACS_MESSAGES = ("Non-existent config key", "Type mismatch", "Attempted to set", "Invalid type")
_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


class UserError(Exception):
    """An error in the user's input: the message names the file, key or value at fault and what would be valid.

    `hint` (optional) is one line of advice that `run_cli` prints under the message.
    """

    hint: Optional[str] = None

    def __init__(self, *args: Any, hint: Optional[str] = None) -> None:
        super().__init__(*args)
        if hint is not None:
            self.hint = hint


class CheckpointMismatchError(UserError, RuntimeError):
    """A checkpoint does not fit the model; the message lists what is missing, unexpected or mis-shaped."""


def _text(err: BaseException) -> str:
    # KeyError's str() quotes its argument; the message is what the raiser wrote
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    else:
        text = str(err)
    # an exception re-raised by a DataLoader worker carries the worker's traceback; its last line is the message
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text.strip()


def is_user_error(err: BaseException) -> bool:
    """True for errors caused by the user's input rather than by a bug, that is:

    - any `UserError` (ConfigError, CheckpointMismatchError, ImageReadError, ... subclass it);
    - a missing, existing, wrong-kind or forbidden file or folder (FileNotFoundError, FileExistsError,
      IsADirectoryError, NotADirectoryError, PermissionError);
    - yacs' own config merge errors (KeyError 'Non-existent config key', ValueError 'Type mismatch', ...);
    - a ValueError or KeyError whose message names a config key (`ENGINE.AMP is 'x'; valid: ...`), which is how
      the adapters that check config values report a bad value.

    Anything else (a RuntimeError from torch, an IndexError, a TypeError, ...) is treated as a bug: it keeps its
    traceback.
    """
    if isinstance(err, UserError) or isinstance(err, _FILE_ERRORS):
        return True
    if isinstance(err, (ValueError, KeyError)):
        text = _text(err)
        return any(m in text for m in _YACS_MESSAGES) or bool(_CONFIG_KEY.search(text))
    return False


def format_user_error(err: BaseException) -> List[str]:
    """The lines `run_cli` prints: `error: <first line of the message>` and, if there is one, `hint: <...>`.

    The hint is the error's `hint` attribute, else the rest of a multi-line message folded into one line.
    """
    lines = [line.strip() for line in _text(err).splitlines() if line.strip()] or [type(err).__name__]
    out = [f"error: {lines[0]}"]
    hint = getattr(err, "hint", None)
    if hint:
        out.append(f"hint: {' '.join(str(hint).split())}")
    elif len(lines) > 1:
        out.append(f"hint: {' '.join(' '.join(lines[1:]).split())}")
    return out


def _debug_requested(argv: List[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def run_cli(main: Callable[[Sequence[str]], Any], argv: Optional[Sequence[str]] = None) -> int:
    """Run `main(argv)` (default: sys.argv[1:]) and return an exit status for `sys.exit`.

    0 when main returns; 2 after printing a short message for a user error (see `is_user_error`); 130 after one
    line on Ctrl-C. `--debug` (removed from argv before main sees it) or HRNET_POSE_DEBUG=1 re-raises user errors
    with their traceback. Other exceptions propagate unchanged (Python prints the traceback, exit status 1).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        main(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - sorted into user errors and bugs below
        if debug or not is_user_error(err):
            raise
        sys.stdout.flush()  # whatever main logged comes before the error, not after it
        for line in format_user_error(err):
            print(line, file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
