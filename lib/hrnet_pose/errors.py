"""Errors caused by what a user gave us (a config key, a file, a checkpoint, a data layout) and the command-line
wrapper that turns them into one readable message instead of a traceback.

`UserError` is the base of our own such errors: code raises a subclass (`ConfigError` for a config key's value) where
the user is at fault. `is_user_error` decides by type alone: a UserError, or a standard file error (a missing file,
a forbidden folder). `run_cli(main)` runs a
tool's `main(argv)`: on a user error it prints `error: <first line>` and at most one `hint:` line to stderr and returns
exit status 2; `--debug` on the command line or `HRNET_POSE_DEBUG=1` re-raises instead, with the full traceback.

This module imports nothing heavy (no torch), so any layer of the package can raise these errors.
"""

import os
import sys
import traceback
from typing import Any, Callable, List, Optional, Sequence

__all__ = ["UserError", "ConfigError", "CheckpointMismatchError", "is_user_error", "run_cli", "format_user_error",
           "DEBUG_ENV", "EXIT_USER_ERROR"]

DEBUG_ENV = "HRNET_POSE_DEBUG"
DEBUG_FLAG = "--debug"
EXIT_USER_ERROR = 2  # the argparse convention for "the command line was wrong"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

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


class ConfigError(UserError, ValueError):
    """A config file or override names a key that does not exist, gives a value of the wrong type, or a value the
    code does not implement (the message names the key and what would be valid)."""


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
    """True for errors caused by the user's input rather than by a bug, decided by the error's type alone:

    - any `UserError` (ConfigError, CheckpointMismatchError, ImageReadError, ... subclass it): the code raises one
      where the user is at fault (a config value, a file's content, a data layout);
    - a missing, existing, wrong-kind or forbidden file or folder (FileNotFoundError, FileExistsError,
      IsADirectoryError, NotADirectoryError, PermissionError).

    Anything else (a bare ValueError, a RuntimeError from torch, an IndexError, a TypeError, ...) is treated as a
    bug: it keeps its traceback.
    """
    return isinstance(err, (UserError,) + _FILE_ERRORS)


def format_user_error(err: BaseException) -> List[str]:
    """The lines `run_cli` prints: `error: <first line of the message>` and, if there is one, `hint: <...>`.

    The hint is the error's `hint` attribute, else the rest of a multi-line message folded into one line. An error
    whose class sets `one_problem_per_line` (a list of independent problems, such as the data check's) prints every
    further line as `error: <line>` instead.
    """
    lines = [line.strip() for line in _text(err).splitlines() if line.strip()] or [type(err).__name__]
    out = [f"error: {lines[0]}"]
    if getattr(err, "one_problem_per_line", False):
        out += [f"error: {line}" for line in lines[1:]]
        lines = lines[:1]
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

    0 when main returns; 2 after printing a short message for a user error (see `is_user_error`; an error class may
    name another status in `exit_status`, as a lost camera does); 130 after one line on Ctrl-C. `--debug` (removed from argv before main sees it) or HRNET_POSE_DEBUG=1 re-raises user errors
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
        return int(getattr(err, "exit_status", EXIT_USER_ERROR))  # a lost camera has its own (streams.frames)
    return 0
