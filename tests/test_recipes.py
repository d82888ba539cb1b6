"""gptcourse.recipes: the training config's checks, and what each named recipe promises."""

from __future__ import annotations

import pytest
import torch

from gptcourse import GPT, MODEL_PRESETS, env, precision
from gptcourse.bench import flops_per_token
from gptcourse.data import find_shakespeare, load_dataset
from gptcourse.recipes import RECIPES, TrainConfig, get_recipe
from gptcourse.train_cli import parse_train_args

# nanoGPT's config/train_shakespeare_char.py (the settings that reach the model and the loop), verbatim
NANOGPT_SHAKESPEARE_CHAR = """
eval_interval = 250 # keep frequent because we'll overfit
eval_iters = 200
log_interval = 10 # don't print too too often
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256 # context of up to 256 previous characters
n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2
learning_rate = 1e-3 # with baby networks can afford to go a bit higher
max_iters = 5000
lr_decay_iters = 5000 # make equal to max_iters usually
min_lr = 1e-4 # learning_rate / 10 usually
beta2 = 0.99 # make a bit bigger because number of tokens per iter is small
warmup_iters = 100 # not super necessary potentially
"""
# nanoGPT README's CPU command, verbatim: python train.py config/train_shakespeare_char.py ...
NANOGPT_README_CPU = ("--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 "
                      "--n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0")


def _nanogpt_settings(text: str) -> list[str]:
    """`name = value  # comment` lines as --name=value arguments for our command line."""
    lines = [line.split("#")[0].split("=") for line in text.strip().splitlines()]
    return [f"--{name.strip()}={value.strip()}" for name, value in lines]


def _millions(recipe_name: str) -> float:
    return round(GPT(RECIPES[recipe_name].model).num_parameters() / 1e6, 1)


def test_train_config_validates():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="float64")
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(learning_rate=1e-3, min_lr=1e-2)
    cfg = TrainConfig(max_iters=7)
    assert TrainConfig.from_dict({**cfg.to_dict(), "gone_field": 1}) == cfg


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_is_a_whole_schedule_on_the_command_line(name):
    recipe = get_recipe(name)
    t = recipe.train
    assert t.lr_decay_iters == t.max_iters and t.warmup_iters < t.max_iters  # the cosine ends with the run
    assert t.min_lr == pytest.approx(t.learning_rate / 10)  # Chinchilla's floor, as the field's comment says
    assert t.max_iters % t.eval_interval == 0  # the last evaluation lands on the last step
    assert parse_train_args(["--preset", name]).model_config == recipe.model
    assert recipe.note


def test_unknown_recipe_names_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'huge'; choose one of: shakespeare-cpu"):
        get_recipe("huge")


def test_shakespeare_recipes_fit_the_character_vocabulary():
    if find_shakespeare() is None:
        pytest.skip("Tiny Shakespeare is not at hand (set GPTCOURSE_DATA_DIR)")
    vocab = load_dataset("char").tokenizer.vocab_size
    for recipe in RECIPES.values():
        assert recipe.train.tokenizer == "char" and recipe.model.vocab_size == vocab


def test_shakespeare_cpu_is_the_default_and_the_laptop_size():
    recipe = RECIPES["shakespeare-cpu"]
    assert recipe.train == TrainConfig() and recipe.model == MODEL_PRESETS["shakespeare-cpu"]
    assert _millions("shakespeare-cpu") == 0.8  # "0.8M parameters" (its comment, BENCHMARKS.md)


def test_shakespeare_char_is_nanogpts_config():
    parsed = parse_train_args(["--preset", "tiny", *_nanogpt_settings(NANOGPT_SHAKESPEARE_CHAR)])
    ours = RECIPES["shakespeare-char"]
    assert parsed.train_config.replace(device="auto", dtype="auto", out_dir=None) == ours.train
    shape = ("block_size", "n_layer", "n_head", "n_embd", "dropout")
    assert all(getattr(parsed.model_config, f) == getattr(ours.model, f) for f in shape)
    assert _millions("shakespeare-char") == 10.7  # nanoGPT's "10.65M parameters"


def test_nanogpt_cpu_is_nanogpts_readme_command():
    parsed = parse_train_args(["--preset", "shakespeare-char", *NANOGPT_README_CPU.split()])
    ours = RECIPES["nanogpt-cpu"]
    assert parsed.train_config.replace(device="auto", out_dir=None) == ours.train
    assert parsed.model_config.replace(activation="gelu") == ours.model  # nanoGPT's nn.GELU is the exact one


def test_shakespeare_gpu_sees_nanogpts_tokens_in_half_the_steps():
    gpu, char = RECIPES["shakespeare-gpu"], RECIPES["shakespeare-char"]
    assert gpu.model == char.model and gpu.train.compile
    assert gpu.train.batch_size == 2 * char.train.batch_size and 2 * gpu.train.max_iters == char.train.max_iters


def test_tiny_is_exact_and_on_the_cpu():
    t = RECIPES["tiny"].train
    assert (t.device, t.dtype) == ("cpu", "float32")  # the tests compare runs number for number
    assert _millions("tiny") < 0.1


def _training_flops(recipe_name: str) -> float:
    recipe = RECIPES[recipe_name]
    m, t = recipe.model, recipe.train
    per_token = flops_per_token(GPT(m).num_parameters(), m.n_layer, m.n_embd, m.block_size)
    return per_token * t.batch_size * m.block_size * t.max_iters


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
def test_shakespeare_t4_is_nanogpts_model_in_float16_with_a_scaler(monkeypatch):
    t4 = RECIPES["shakespeare-t4"]
    assert t4.model == MODEL_PRESETS["shakespeare-char"] and t4.train.dtype == "auto" and not t4.train.compile
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # a T4
    cuda = torch.device("cuda")
    dtype = precision.resolve_dtype(t4.train.dtype, cuda)
    assert dtype == torch.float16 and isinstance(precision.grad_scaler(cuda, dtype), torch.amp.GradScaler)
    # its sizing (the recipe's comment): about 5 minutes at 8 TFLOP/s, 12% of a T4's 65 TFLOP/s float16 peak
    assert 240 < _training_flops("shakespeare-t4") / 8e12 < 330


def test_shakespeare_mps_asks_for_the_apple_gpu_and_fits_minutes():
    mps = RECIPES["shakespeare-mps"]
    assert mps.train.device == "mps" and mps.train.dtype == "auto"
    assert round(GPT(mps.model).num_parameters() / 1e6, 1) == 3.2  # its comment
    assert 180 < _training_flops("shakespeare-mps") / 1e12 < 300  # about 4 minutes at 1 TFLOP/s


def _fake_mps(monkeypatch, available: bool, version: str) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: available)
    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.delenv("GPTCOURSE_DEVICE", raising=False)


def test_the_mps_preset_refuses_a_torch_that_trains_wrongly_on_mps(monkeypatch):
    device = RECIPES["shakespeare-mps"].train.device
    _fake_mps(monkeypatch, available=True, version="2.3.1")
    with pytest.raises(ValueError, match=r"PyTorch 2\.3\.1 trains incorrectly.*torch>=2\.4.*--device cpu"):
        env.pick_device(device)
    _fake_mps(monkeypatch, available=False, version="2.5.0")
    with pytest.raises(ValueError, match="no Apple GPU here: use --device cpu"):
        env.pick_device(device)
    _fake_mps(monkeypatch, available=True, version="2.5.0")
    assert env.pick_device(device) == torch.device("mps")


def test_the_mps_preset_stops_the_command_with_the_reason(monkeypatch, tmp_path, capsys):
    from gptcourse.train_cli import train_main

    _fake_mps(monkeypatch, available=False, version="2.5.0")
    assert train_main(["--preset", "shakespeare-mps", "--out_dir", str(tmp_path)]) == 1
    assert "no Apple GPU here: use --device cpu" in capsys.readouterr().err
