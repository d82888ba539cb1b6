"""gptcourse: the reference implementation behind the course, and the course's tools.

Shape legend, used in every comment and docstring:
    B   batch size (sequences processed together)
    T   sequence length (tokens per sequence, at most block_size)
    C   channels: the width of the residual stream, n_embd
    nh  number of attention heads, n_head
    hs  head size, C // nh
    V   vocabulary size

Importing the package does nothing else: no prints, downloads or device choice.
"""

from .config import MODEL_PRESETS, GPTConfig
from .model import GPT

__version__ = "0.1.0"
__all__ = ["GPT", "GPTConfig", "MODEL_PRESETS", "__version__"]
