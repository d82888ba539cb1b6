"""The feed-forward network, GELU, LayerNorm and the block."""

import pytest
import torch
import torch.nn.functional as F

from gptcourse import GPTConfig
from gptcourse.block import Block
from gptcourse.mlp import MLP, gelu, make_activation
from gptcourse.norm import LayerNorm


def test_gelu_formulas_match_torch():
    x = torch.linspace(-6, 6, 1001)
    assert torch.allclose(gelu(x, "tanh"), F.gelu(x, approximate="tanh"), atol=1e-6)
    assert torch.allclose(gelu(x, "none"), F.gelu(x), atol=1e-6)
    assert torch.allclose(make_activation("gelu_tanh")(x), gelu(x), atol=1e-6)
    with pytest.raises(ValueError):
        gelu(x, "fast")


def test_mlp_is_per_token():
    mlp = MLP(16)
    x = torch.randn(2, 9, 16)
    perm = torch.randperm(9)
    assert torch.allclose(mlp(x)[:, perm], mlp(x[:, perm]), atol=1e-6)
    assert mlp.c_fc.out_features == 64  # the 4x expansion


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_equals_torch(bias):
    ours, ref = LayerNorm(20, bias=bias), torch.nn.LayerNorm(20, bias=bias)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
        if bias:
            ours.bias.normal_()
            ref.bias.copy_(ours.bias)
    x = torch.randn(4, 7, 20) * 3 + 2
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_block_shapes_and_residual_switch(placement):
    config = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16, norm_placement=placement)
    block = Block(config)
    x = torch.randn(2, 8, 16)
    assert block(x).shape == x.shape
    plain = Block(config, residual=False)
    plain.load_state_dict(block.state_dict())
    assert not torch.allclose(plain(x), block(x))


def test_pre_norm_block_formula():
    config = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16)
    block = Block(config)
    x = torch.randn(2, 8, 16)
    h = x + block.attn(block.ln_1(x))
    assert torch.allclose(block(x), h + block.mlp(block.ln_2(h)), atol=1e-6)
