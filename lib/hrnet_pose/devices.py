"""The one reading of a device name, for every entry point (ENGINE.DEVICE, `--device`, the API's `device=`).

'', 'auto' or None: CUDA (device `local_rank` under torchrun) when available, else the CPU; 'cpu'; 'cuda' (device
`local_rank`) or 'cuda:N'. A CUDA device asked for where CUDA is not available, or a name torch does not know, is a
`ConfigError` naming the value and what is valid.
"""

from typing import Union

import torch

from .errors import ConfigError

AUTO = ("", "auto")


def resolve_device(name: Union[str, torch.device, None], local_rank: int = 0) -> torch.device:
    """A torch.device for `name` (see the module docstring)."""
    if name is None or (isinstance(name, str) and name.strip().lower() in AUTO):
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device {name!r} is not a valid torch device; valid: 'auto' (or ''), 'cpu', 'cuda', "
                          "'cuda:N'") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for (ENGINE.DEVICE / --device), but CUDA is not available here; "
                              "use 'cpu' or 'auto'")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device

