"""Attention / gating blocks for HRNet residual blocks and branches, built by name through one factory.

``create_attention(name, channels, **kwargs)`` builds a block (``''``/None -> None) and
``attention_placement(name)`` says where it goes ('gate', 'conv', 'skip', 'context'); see ``registry.py``.
Importing each block file registers it: a new block file must be imported here.
"""

from .cbam import CBAM
from .double_attn import DoubleAttention
from .eca import EfficientChannelAttention
from .mixed_pool import MixedPooling
from .non_local import NonLocal
from .registry import (PLACEMENTS, attention_kwargs, attention_placement, create_attention, get_attention_class,
                       list_attentions, register_attention, reset_attention_parameters)
from .res2net import Res2NetConv
from .scconv import SelfCalibratedConv
from .scse import SCSE
from .se import SqueezeExcite
from .sge import SpatialGroupEnhance
from .sk import SelectiveKernel
from .soft_gate import SoftGate
from .splat import SplitAttention
from .strip_pool import StripPooling

__all__ = [
    "PLACEMENTS", "attention_kwargs", "attention_placement", "create_attention", "get_attention_class",
    "list_attentions", "register_attention", "reset_attention_parameters",
    "CBAM", "DoubleAttention", "EfficientChannelAttention", "MixedPooling", "NonLocal", "Res2NetConv", "SCSE",
    "SelfCalibratedConv", "SqueezeExcite",
    "SpatialGroupEnhance", "SelectiveKernel", "SoftGate", "SplitAttention", "StripPooling",
]
