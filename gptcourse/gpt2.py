"""Loading OpenAI's GPT-2 weights (Hugging Face format) into the course's `GPT`.

The parameter names already match GPT-2's, so loading is a rename and a transpose: GPT-2 stores its
linear layers as `Conv1D`, whose weight is (in, out), while `nn.Linear` keeps (out, in).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .config import GPTConfig
from .model import GPT

__all__ = ["from_pretrained", "config_from_hf"]

TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def config_from_hf(hf: dict) -> GPTConfig:
    """Our config from a Hugging Face GPT-2 `config.json`."""
    act = hf.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise ValueError(f"unsupported activation_function {act!r} in config.json")
    return GPTConfig(
        vocab_size=hf["vocab_size"],
        block_size=hf.get("n_positions", hf.get("n_ctx", 1024)),
        n_layer=hf["n_layer"],
        n_head=hf["n_head"],
        n_embd=hf["n_embd"],
        dropout=0.0,
        bias=True,
        tie_weights=hf.get("tie_word_embeddings", True),
        activation=ACTIVATIONS[act],
    )


def _resolve(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists() or name_or_path.startswith((".", "/")):
        raise FileNotFoundError(f"{name_or_path} is not a directory holding config.json and model.safetensors")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, allow_patterns=["config.json", "model.safetensors"]))
    except Exception as err:
        raise OSError(
            f"could not fetch {name_or_path!r} from the Hugging Face hub ({type(err).__name__}); "
            "without a network, pass a local folder that holds config.json and model.safetensors"
        ) from None


def from_pretrained(name_or_path: str) -> GPT:
    """A `GPT` holding GPT-2's weights from a local folder or a hub name such as "gpt2"."""
    from safetensors.torch import load_file

    folder = _resolve(name_or_path)
    for needed in ("config.json", "model.safetensors"):
        if not (folder / needed).is_file():
            raise FileNotFoundError(
                f"{folder} has no {needed}: a GPT-2 checkpoint needs config.json and model.safetensors"
            )
    config = config_from_hf(json.loads((folder / "config.json").read_text()))
    hf_state = load_file(str(folder / "model.safetensors"))
    model = GPT(config)
    ours = model.state_dict()
    loaded = {}
    for key, tensor in hf_state.items():
        name = key if key.startswith("lm_head.") else "transformer." + key.removeprefix("transformer.")
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # GPT-2's saved causal-mask buffers; ours are built, not loaded
        if name not in ours:
            raise ValueError(f"unexpected tensor {key!r} in {folder / 'model.safetensors'}")
        if name.endswith(TRANSPOSED):
            tensor = tensor.t()
        if tensor.shape != ours[name].shape:
            raise ValueError(f"{key}: shape {tuple(tensor.shape)} does not fit {tuple(ours[name].shape)}")
        loaded[name] = tensor
    if config.tie_weights:
        loaded.pop("lm_head.weight", None)  # tied: the head is the token embedding
        ours.pop("lm_head.weight", None)
    missing = set(ours) - set(loaded)
    if missing:
        raise ValueError(f"the checkpoint lacks {sorted(missing)[:3]}...: not a GPT-2 model?")
    with torch.no_grad():
        for name, tensor in loaded.items():
            ours[name].copy_(tensor)
    return model.eval()
