"""The model's configuration: one frozen dataclass and the named model shapes (MODEL_PRESETS)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["GPTConfig", "MODEL_PRESETS"]

POS_ENCODINGS = ("learned", "sinusoidal", "rope")
NORM_PLACEMENTS = ("pre", "post")
ACTIVATIONS = ("gelu_tanh", "gelu", "relu")


@dataclass(frozen=True)
class GPTConfig:
    """Everything that fixes a GPT's shape. Defaults are GPT-2 small's choices."""

    vocab_size: int = 50257  # GPT-2's BPE: 256 bytes + 50,000 merges + <|endoftext|>
    block_size: int = 1024  # the context window: the most tokens the model sees at once
    n_layer: int = 12  # number of transformer blocks
    n_head: int = 12  # attention heads per block; n_embd must divide evenly among them
    n_embd: int = 768  # width of the residual stream (d_model)
    dropout: float = 0.0  # 0 for pre-training small models; 0.1-0.2 helps when data is scarce
    bias: bool = True  # True: like GPT-2. False: a bit better and faster (nanoGPT)
    pos_encoding: str = "learned"  # "learned" (GPT-2), "sinusoidal" (2017 Transformer), "rope" (LLaMA)
    norm_placement: str = "pre"  # "pre": LayerNorm before each sub-block (GPT-2); "post": after (2017)
    tie_weights: bool = True  # the output head reuses the token embedding matrix (GPT-2 does)
    activation: str = "gelu_tanh"  # GPT-2's tanh approximation of GELU; "gelu" exact; "relu"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                "each head gets n_embd // n_head dimensions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        _check_choice("pos_encoding", self.pos_encoding, POS_ENCODINGS)
        _check_choice("norm_placement", self.norm_placement, NORM_PLACEMENTS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        if self.pos_encoding == "rope" and self.head_size % 2:
            raise ValueError(f"rope rotates pairs of dimensions: head size {self.head_size} must be even")
        if self.pos_encoding == "sinusoidal" and self.n_embd % 2:
            raise ValueError(f"sinusoidal positions need an even n_embd, got {self.n_embd}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_preset(cls, name: str, **overrides) -> GPTConfig:
        """A named preset, with any field replaced: `GPTConfig.from_preset("gpt2", n_layer=2)`."""
        if name not in MODEL_PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(MODEL_PRESETS)}")
        return dataclasses.replace(MODEL_PRESETS[name], **overrides)

    def replace(self, **changes) -> GPTConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """Rebuild from `to_dict()` (a checkpoint's), ignoring fields this version no longer has."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


SHAKESPEARE_CHARS = 65  # distinct characters in Tiny Shakespeare

MODEL_PRESETS: dict[str, GPTConfig] = {
    # GPT-2 small, 124M parameters (124,439,808 with tied weights).
    "gpt2": GPTConfig(),
    # GPT-2 medium, 350M.
    "gpt2-medium": GPTConfig(n_layer=24, n_head=16, n_embd=1024),
    # nanoGPT's Shakespeare-char model: 10.7M parameters, the size for a GPU.
    "shakespeare-char": GPTConfig(
        vocab_size=SHAKESPEARE_CHARS, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, bias=False
    ),
    # Sized for a laptop CPU: trains to readable Shakespeare in under a minute on two cores. RoPE: it
    # reached a lower loss than learned positions for the same tokens (BENCHMARKS.md); exact GELU: faster
    # than the tanh form on CPUs.
    "shakespeare-cpu": GPTConfig(
        vocab_size=SHAKESPEARE_CHARS, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False,
        pos_encoding="rope", activation="gelu",
    ),
}
