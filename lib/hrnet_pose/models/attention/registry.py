"""Registry and factory for the attention / gating blocks.

Every block is an ``nn.Module`` class whose first positional argument is the channel count, registered under a
lowercase name together with its *placement*, which tells a residual block or HRNet module where it goes:

``'gate'``     ``module(x) -> same shape``; applied after the block's last BN, before the residual add.
``'conv'``     replaces the block's 3x3 conv: ``cls(channels, out_channels=None, stride=1, **kw)`` maps
               ``[N, C, H, W] -> [N, out, H / stride, W / stride]``; the block's own BN follows it. The class sets
               ``replaced_conv_key``: the key (relative to the module) of a dense ``[out, C, 3, 3]`` conv weight that
               plays the role of the replaced conv, or ``None`` when there is none.
``'skip'``     ``module(identity) -> identity * alpha``; applied to the identity path of a residual block.
``'context'``  applied to a whole HRNet branch output before fusion; includes its own residual and is exactly the
               identity at init.

Blocks with an init invariant (identity at init, alpha = 1, ...) define ``reset_parameters()``;
``reset_attention_parameters(model)`` re-applies them after a generic model-wide init (such as the official
``init_weights``, which sets every BN gamma to 1 and every conv to N(0, 0.001) and would break the invariants).
"""

import inspect
import numbers
from typing import Callable, Dict, List, Optional, Type

from torch import nn

from ...errors import UserError

PLACEMENTS = ("gate", "conv", "skip", "context")

_ATTENTIONS: Dict[str, Type[nn.Module]] = {}


def register_attention(name: str, placement: str) -> Callable[[Type[nn.Module]], Type[nn.Module]]:
    """Class decorator: register ``cls`` under ``name`` and set ``cls.placement``."""
    if placement not in PLACEMENTS:
        raise ValueError(f"register_attention({name!r}): placement {placement!r} is not one of {PLACEMENTS}")
    if name != name.lower() or not name:
        raise ValueError(f"register_attention: name {name!r} must be a non-empty lowercase string")

    def wrap(cls: Type[nn.Module]) -> Type[nn.Module]:
        if name in _ATTENTIONS and _ATTENTIONS[name] is not cls:
            raise ValueError(f"register_attention: {name!r} is already registered to {_ATTENTIONS[name].__name__}")
        if placement == "conv" and not hasattr(cls, "replaced_conv_key"):
            raise TypeError(f"register_attention({name!r}): conv-type class {cls.__name__} must set "
                            f"a class attribute replaced_conv_key (a state_dict key or None)")
        cls.placement = placement
        _ATTENTIONS[name] = cls
        return cls

    return wrap


def list_attentions(placement: Optional[str] = None) -> List[str]:
    """Sorted registered names, optionally only those with the given placement."""
    if placement is not None and placement not in PLACEMENTS:
        raise ValueError(f"list_attentions: placement {placement!r} is not one of {PLACEMENTS}")
    return sorted(n for n, c in _ATTENTIONS.items() if placement is None or c.placement == placement)


class UnknownAttentionError(UserError, ValueError):
    """MODEL.EXTRA.ATTENTION.NAME names no registered block."""


class AttentionKeywordError(UserError, TypeError):
    """MODEL.EXTRA.ATTENTION.KWARGS holds a keyword the block does not take."""


def _normalise(name: Optional[str]) -> str:
    return "" if name is None else str(name).strip().lower()


def get_attention_class(name: str) -> Type[nn.Module]:
    """The registered class for ``name``; ValueError listing the valid names if unknown."""
    key = _normalise(name)
    if key not in _ATTENTIONS:
        raise UnknownAttentionError(f"unknown attention {name!r} (MODEL.EXTRA.ATTENTION.NAME); valid names: "
                                    f"{', '.join(list_attentions())} (or '' for no attention)")
    return _ATTENTIONS[key]


def attention_placement(name: Optional[str]) -> str:
    """``'gate'``, ``'conv'``, ``'skip'`` or ``'context'`` for a registered name; ``''`` for ``''``/None (no block)."""
    if _normalise(name) == "":
        return ""
    return get_attention_class(name).placement


def attention_kwargs(name: str) -> List[str]:
    """Keyword arguments the block ``name`` accepts (its constructor parameters after the channel count)."""
    params = list(inspect.signature(get_attention_class(name).__init__).parameters.values())[2:]  # self, channels
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def create_attention(name: Optional[str], channels: int, **kwargs) -> Optional[nn.Module]:
    """Build the block ``name`` for ``channels`` input channels; ``''``/None gives None.

    Raises ValueError for an unknown name (listing the valid names) and TypeError for a keyword the block does not
    take (listing the ones it does), so a typo in ``MODEL.EXTRA.ATTENTION.KWARGS`` fails loudly.
    """
    if _normalise(name) == "":
        return None
    cls = get_attention_class(name)
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise ValueError(f"create_attention({name!r}): channels must be a positive int, got {channels!r}")
    channels = int(channels)
    valid = attention_kwargs(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise AttentionKeywordError(
            f"create_attention({name!r}): unknown keyword(s) {unknown} (MODEL.EXTRA.ATTENTION.KWARGS); valid "
            f"keywords for {name!r} ({cls.__name__}): {', '.join(valid) if valid else '(none)'}")
    return cls(channels, **kwargs)


def reset_attention_parameters(model: nn.Module) -> int:
    """Re-apply the designed init of every registered block inside ``model``; returns how many were reset.

    Call it at the end of a model-wide init loop, so context blocks start as the identity again.
    """
    classes = tuple(_ATTENTIONS.values())
    count = 0
    for m in model.modules():
        if isinstance(m, classes) and hasattr(m, "reset_parameters"):
            m.reset_parameters()
            count += 1
    return count
