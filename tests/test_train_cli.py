"""`python -m gptcourse train` and `sample`: argument parsing, refusals, and a real run end to end."""

from __future__ import annotations

import pytest

from gptcourse.cli import main
from gptcourse.recipes import RECIPES
from gptcourse.train_cli import UsageError, parse_train_args, parse_value


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def test_defaults_to_the_cpu_preset_in_runs_dir(tmp_path):
    preset, model, cfg, resume, overwrite, note = parse_train_args([])
    assert preset == "shakespeare-cpu" and model == RECIPES["shakespeare-cpu"].model
    assert cfg == RECIPES["shakespeare-cpu"].train.replace(out_dir=str(tmp_path / "runs" / "shakespeare-cpu"))
    assert not resume and not overwrite and note == ""


def test_overrides_are_typed():
    _, model, cfg, resume, _, _ = parse_train_args(
        ["--preset", "tiny", "--n_layer", "3", "--bias=true", "--dropout", "0.2", "--learning_rate", "1e-3",
         "--compile", "false", "--out_dir", "somewhere", "--device", "cpu", "--resume"])
    assert (model.n_layer, model.bias, model.dropout) == (3, True, 0.2)
    assert (cfg.learning_rate, cfg.compile, cfg.out_dir, cfg.device) == (1e-3, False, "somewhere", "cpu")
    assert resume and cfg.max_iters == RECIPES["tiny"].train.max_iters  # untouched fields keep the preset's


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n_layers", "3"], "unknown option --n_layers. Valid: .*n_layer"),
        (["--n_layer", "three"], "--n_layer needs an integer"),
        (["--bias", "maybe"], "--bias needs true or false"),
        (["--learning_rate", "fast"], "--learning_rate needs a number"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--max_iters"], "--max_iters needs a value"),
        (["stray"], "unexpected argument"),
        (["--n_head", "5"], "divisible by n_head"),
        (["--dtype", "float64"], "dtype must be one of"),
    ],
)
def test_bad_arguments_are_refused(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_train_args(argv)


def test_bad_arguments_exit_2_with_the_list(capsys):
    assert main(["train", "--nope", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown option --nope" in err and "gradient_accumulation_steps" in err and "batch_size" in err


def test_parse_value_optional():
    assert parse_value("out_dir", "none", str | None) is None
    assert parse_value("out_dir", "x", str | None) == "x"


@pytest.mark.slow
def test_train_then_sample_then_refuse_to_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "tiny", "--max_iters", "12", "--eval_interval", "6", "--out_dir", str(out)]
    assert main(argv) == 0
    assert "done: val loss" in capsys.readouterr().out
    assert (out / "ckpt.pt").is_file() and len((out / "metrics.jsonl").read_text().splitlines()) == 12
    assert main(argv) == 1  # a second run may not silently replace the first
    assert "already holds a checkpoint" in capsys.readouterr().err
    sample = ["sample", "--out_dir", str(out), "--prompt", "ROMEO:", "--max_new_tokens", "30", "--seed", "1"]
    assert main(sample + ["--temperature", "0.8", "--top_k", "5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) >= 36
    assert main(sample + ["--top_k", "5"]) == 0
    assert capsys.readouterr().out == text  # the same seed writes the same text
    assert main(sample + ["--temperature", "-1"]) == 2
    assert "temperature" in capsys.readouterr().err
    assert main(["sample", "--out_dir", str(tmp_path / "none")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(sample[:-4] + ["--prompt", "\u00e9"]) == 2  # not in the vocabulary
    assert "not in this tokenizer" in capsys.readouterr().err
