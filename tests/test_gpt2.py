"""Loading GPT-2 checkpoints: tiny random ones made with `transformers`, compared logit for logit."""

import json

import pytest
import torch

from gptcourse.gpt2 import from_pretrained

transformers = pytest.importorskip("transformers", reason="transformers is a test dependency: pip install -e .[test]")


def make_checkpoint(path, **overrides):
    settings = dict(vocab_size=97, n_positions=32, n_embd=48, n_layer=3, n_head=4)
    settings.update(overrides)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**settings)).eval()
    with torch.no_grad():  # biases and norms start at 0 and 1; make them matter
        for name, p in hf.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    hf.save_pretrained(path, safe_serialization=True)
    return hf


@pytest.mark.parametrize("tied", [True, False])
def test_logits_match_transformers(tmp_path, tied):
    hf = make_checkpoint(tmp_path, tie_word_embeddings=tied)
    ours = from_pretrained(str(tmp_path))
    assert ours.config.tie_weights == tied and ours.config.block_size == 32
    idx = torch.randint(0, 97, (2, 32))
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
    assert (got - expected).abs().max().item() < 1e-4


def test_missing_files_and_unreachable_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json and model.safetensors"):
        from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        from_pretrained(str(tmp_path))


def test_hub_name_offline_is_one_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="could not fetch 'gpt2-no-such-model'.*local folder"):
        from_pretrained("gpt2-no-such-model")
