"""gptcourse.progress_bar: in a terminal, tqdm's bar and the lines on stderr; in a notebook, nothing on stderr
and, once the run ends, a one-line summary in place of the bar (a saved notebook never shows a bar part-way)."""

from __future__ import annotations

import nbformat
import pytest

from gptcourse.notebooks import execute_notebook
from gptcourse.progress_bar import Progress, in_notebook

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_in_a_terminal_the_bar_and_lines_go_to_stderr(capsys):
    assert not in_notebook()
    bar = Progress(total=3)
    bar.say("hello")
    bar.update(loss=1.5)
    bar.close("summary")
    out, err = capsys.readouterr()
    assert out == "" and "hello" in err and "loss=1.5000" in err


def test_a_disabled_progress_is_silent(capsys):
    bar = Progress(total=3, enabled=False)
    bar.say("hello")
    bar.update(2)
    bar.close("summary")
    assert capsys.readouterr() == ("", "")


@pytest.mark.slow
def test_a_notebook_keeps_no_stderr_and_no_bar_only_the_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))  # the kernel inherits the environment
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from gptcourse.recipes import RECIPES\n"
        "from gptcourse.train import train\n"
        "recipe = RECIPES['tiny']\n"
        "result = train(recipe.model, recipe.train.replace(max_iters=12, lr_decay_iters=12, eval_interval=6))"
    )]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    executed, _ = execute_notebook(path, out_path=path, cwd=tmp_path)
    outputs = executed.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], outputs
    assert not [o for o in outputs if WIDGET in o.get("data", {})], outputs  # the bar is gone
    summaries = [o.data["text/plain"] for o in outputs if o.output_type == "display_data"]
    assert len(summaries) == 1 and summaries[0].startswith("trained steps 0..12 in "), summaries
    assert "val loss" in summaries[0]
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert "training " in printed and "step 6: train loss" in printed and "step 12: train loss" in printed
