import pytest
import torch

from gptcourse import GPT


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("placement", ["pre", "post"])
def test_logits_shape_and_causality(tiny_config, pos, placement):
    model = GPT(tiny_config.replace(pos_encoding=pos, norm_placement=placement)).eval()
    idx = torch.randint(0, 61, (3, 16))
    logits = model(idx)
    assert logits.shape == (3, 16, 61)
    idx2 = idx.clone()
    idx2[:, 10:] = torch.randint(0, 61, (3, 6))
    assert torch.allclose(model(idx2)[:, :10], logits[:, :10], atol=1e-5)


def test_too_long_input_names_the_window(tiny_config):
    model = GPT(tiny_config)
    with pytest.raises(ValueError, match=r"17 tokens.*context window of 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_bad_token_ids(tiny_config):
    model = GPT(tiny_config)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 61\)"):
        model(torch.tensor([[1, 61]]))


def test_weight_tying(tiny_config):
    tied, untied = GPT(tiny_config), GPT(tiny_config.replace(tie_weights=False))
    assert tied.lm_head.weight is tied.transformer.wte.weight
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert untied.num_parameters() - tied.num_parameters() == 61 * 32


def test_init_scales_residual_projections(tiny_config):
    model = GPT(tiny_config.replace(n_layer=8, n_embd=256, n_head=4))
    std = model.transformer.h[0].attn.c_proj.weight.std().item()
    assert std == pytest.approx(0.02 / 4, rel=0.1)  # 0.02 / sqrt(2 * 8)
    assert model.transformer.h[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_cached_forward_matches_full(tiny_config):
    for pos in ("learned", "rope"):
        model = GPT(tiny_config.replace(pos_encoding=pos)).eval()
        idx = torch.randint(0, 61, (2, 12))
        cache = model.new_cache()
        stepwise = torch.cat([model(idx[:, :5], cache), model(idx[:, 5:6], cache), model(idx[:, 6:], cache)], 1)
        assert torch.allclose(stepwise, model(idx), atol=1e-5)


@pytest.mark.parametrize("ids", [[[1, 61]], [[-1, 3]]])
def test_bad_token_ids_name_the_range_on_cpu(tiny_config, ids):
    model = GPT(tiny_config)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 61\).*another tokenizer"):
        model(torch.tensor(ids))


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_compiled_training_step_has_no_graph_break(tiny_config, pos):
    """Nothing in the forward pass reads a tensor's value (a device sync on GPUs, a graph break here)."""
    import torch._dynamo

    model = GPT(tiny_config.replace(pos_encoding=pos))
    x, y = torch.randint(0, 61, (2, 16)), torch.randint(0, 61, (2, 16))

    def loss_of(x, y):
        return torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    torch._dynamo.reset()
    explained = torch._dynamo.explain(loss_of)(x, y)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    # and the whole step runs as one graph, backward included (aot_eager: no C++ compiler needed)
    compiled = torch.compile(loss_of, backend="aot_eager", fullgraph=True)
    loss = compiled(x, y)
    loss.backward()
    assert torch.allclose(loss, loss_of(x, y), atol=1e-5)
    assert all(p.grad is not None for p in model.parameters())
    torch._dynamo.reset()
