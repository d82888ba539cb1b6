"""The course as a learner meets it: JupyterLab in a real (headless) browser, widgets and checks included.

One JupyterLab serves a temp copy of lesson 01 and of its solved exercise (outputs cleared), so nothing
committed is ever touched; Debian's Chromium, driven by Selenium through Debian's chromedriver, runs the
cells through the menu and reads the page. A screenshot of each step goes to test-artifacts/browser/.
The browser tests skip, with the reason, where Chromium or its driver is not installed (.ci/run installs
both). The last test needs no browser: it starts `make lab` itself and asks its server for the lab page
and the lessons.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from pathlib import Path

import nbformat
import pytest

from .browser_helpers import (
    LabPage,
    browser_missing,
    chromium,
    copy_without_outputs,
    free_port,
    http_get,
    lab_command,
    lab_environment,
    root_flags,
    serve,
    wait_until,
)
from .conftest import ROOT

pytestmark = pytest.mark.browser

BROKEN = "broken.ipynb"  # made by the fixture: proves the page reads can see a failure
LESSON = "notebooks/01_tokens_and_embeddings.ipynb"
SOLUTION = "solutions/01_tokens_and_embeddings.ipynb"
EXERCISE = "exercises/01_tokens_and_embeddings.ipynb"  # where the solved copy goes in the temp course
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
SHOTS = ROOT / "test-artifacts" / "browser"
RUN_TIMEOUT = 240  # seconds for one notebook's Run All (lesson 01 takes well under a minute in fast mode)
TYPED = "Hello from a headless browser, 12345!"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A JupyterLab over a temp course (lesson 01, the solved exercise 01) and a browser page on it."""
    if reason := browser_missing():
        pytest.skip(reason)
    pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")
    for rel in (LESSON, SOLUTION):
        if not (ROOT / rel).is_file():
            pytest.fail(f"{rel} does not exist: the browser test needs lesson 01 and its solution")
    for old in SHOTS.glob("*.png"):  # the folder shows this run only
        old.unlink()
    course = tmp_path_factory.mktemp("course")
    copy_without_outputs(ROOT / LESSON, course / LESSON)
    copy_without_outputs(ROOT / SOLUTION, course / EXERCISE)
    broken = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    broken.cells = [nbformat.v4.new_code_cell(c) for c in (
        'print("FAIL  demo.check: the softmax runs over the wrong axis")',
        'raise ValueError("raised on purpose")',
        'print("PASS  never.reached: Run All stops at the error")',
    )]
    nbformat.write(broken, course / BROKEN)
    state = tmp_path_factory.mktemp("lab-state")
    port, token = free_port(), secrets.token_hex(16)
    jupyter = Path(sys.executable).with_name("jupyter")  # the project's environment (.venv/bin under make test)
    command = lab_command(jupyter, port, token) + [f"--ServerApp.root_dir={course}"]
    with serve(command, cwd=course, env=lab_environment(state), port=port, token=token, log=state / "lab.log") as base:
        with chromium(state / "chromium-profile", state / "chromedriver.log") as driver:
            yield LabPage(driver, base, token, SHOTS)


@pytest.fixture(scope="module")
def lesson_run(page):
    """Lesson 01 opened and run with Run > Run All Cells; the seconds the run took."""
    page.open_notebook(LESSON)
    return page.run_all_cells(RUN_TIMEOUT)


def test_lesson_01_runs_in_the_browser_without_errors(page, lesson_run):
    from selenium.webdriver.common.by import By

    state = page.state()
    print(f"lesson 01: Run All took {lesson_run:.1f} s in the browser")
    assert state["kernel"] == "idle"
    assert state["prompts"] and all(re.fullmatch(r"\[\d+\]:", p) for p in state["prompts"]), state["prompts"]
    counts = [int(p[1:-2]) for p in state["prompts"]]
    assert counts == list(range(1, len(counts) + 1)), "not run top to bottom in one kernel"
    assert page.error_outputs() == []
    figures = page.driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-OutputArea-output img")
    assert figures, "no figure on the page"
    page.scroll_to(figures[0])
    page.screenshot("1_lesson_01_ran")


# A token's own text is its span's direct text; the id the explorer may print inside the span is not part of it.
_JS_EXPLORER = """
const box = arguments[0];
const own = e => [...e.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join('');
return {
  tokens: [...box.querySelectorAll('span.gptcourse-token')].map(own),
  lines: [...box.querySelectorAll('*')].map(e => e.textContent.trim()),
};
"""


def _explorer_reading(explorer) -> tuple[int, list[str], int]:
    """What the explorer shows: its 'N tokens' count, the token texts, and the number of token spans."""
    seen = explorer.parent.execute_script(_JS_EXPLORER, explorer)
    counts = [int(m.group(1)) for line in seen["lines"] if (m := re.match(r"(\d+) tokens?\b", line))]
    return (counts[0] if counts else -1), seen["tokens"], len(seen["tokens"])


def _squeeze(text: str) -> str:
    """Text without whitespace and the explorer's visible-space marks, to compare tokens with typed text."""
    return re.sub(r"[\s\u00b7\u21b5\u2192\u240d]", "", text)


def test_tokenizer_explorer_follows_typing(page, lesson_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    explorer = wait_until(lambda: page.driver.find_element(By.CSS_SELECTOR, ".gptcourse-tokenizer-explorer"), 30,
                          "the tokenizer explorer on the page")
    page.scroll_to(explorer)
    before = wait_until(lambda: (r := _explorer_reading(explorer))[2] and r, 30, "coloured tokens in the explorer")
    count, texts, n_spans = before
    assert count == n_spans, f"the explorer says {count} tokens but shows {n_spans}"
    page.screenshot("2_tokenizer_explorer_before")

    # The text box described "Text": a Textarea or a Text widget.
    boxes = [b for b in explorer.find_elements(By.CSS_SELECTOR, ".widget-textarea, .widget-text")
             if b.find_element(By.CSS_SELECTOR, "label").get_attribute("textContent").strip() == "Text"]
    assert boxes, "no text box described 'Text' in the explorer"
    field = boxes[0].find_element(By.CSS_SELECTOR, "textarea, input")
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(TYPED)  # replaces the selection, one key event at a time, as a learner types

    try:
        after = wait_until(lambda: (r := _explorer_reading(explorer)) != before and _squeeze("".join(r[1])) ==
                           _squeeze(TYPED) and r, 30, "the explorer's tokens to follow the typed text")
    except TimeoutError as err:
        page.screenshot("failed_explorer")
        shown, typed = _explorer_reading(explorer), field.get_attribute("value")
        raise AssertionError(f"{err}: the box holds {typed!r}, the explorer shows {shown}") from None
    count2, texts2, n_spans2 = after
    assert count2 == n_spans2, f"the explorer says {count2} tokens but shows {n_spans2}"
    assert count2 != count and texts2 != texts
    assert _squeeze("".join(texts)) != _squeeze(TYPED)
    page.scroll_to(explorer)
    page.screenshot("3_tokenizer_explorer_after_typing")


def _check_calls(notebook) -> int:
    """How many `check(...)` calls the notebook's code makes (each prints one verdict line)."""
    source = "\n".join(c["source"] for c in notebook["cells"] if c["cell_type"] == "code")
    return len(re.findall(r"(?<![\w.])check\(", source)) - len(re.findall(r"def check\(", source))


def test_solved_exercise_shows_pass_verdicts(page, lesson_run):
    from selenium.webdriver.common.by import By

    page.open_notebook(EXERCISE)
    seconds = page.run_all_cells(RUN_TIMEOUT)
    print(f"exercise 01 (solved): Run All took {seconds:.1f} s in the browser")
    assert page.error_outputs() == []
    verdicts = page.verdicts()
    expected = _check_calls(nbformat.read(ROOT / SOLUTION, as_version=4))
    assert expected > 0, "the solution calls no check"
    assert len(verdicts) == expected, f"expected {expected} verdict lines, the page shows: {verdicts}"
    assert all(v.startswith("PASS") for v in verdicts), verdicts
    last = page.driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-OutputArea-output")[-1]
    page.scroll_to(last)
    page.screenshot("4_exercise_01_verdicts")


def test_the_page_reads_see_an_error_and_a_failed_check(page, lesson_run):
    page.open_notebook(BROKEN)
    page.run_all_cells(60)
    errors = page.error_outputs()
    assert len(errors) == 1 and "ValueError" in errors[0] and "raised on purpose" in errors[0], errors
    assert page.verdicts() == ["FAIL  demo.check: the softmax runs over the wrong axis"]
    assert page.state()["prompts"] == ["[1]:", "[2]:", "[ ]:"], "Run All went on after the error"


def _fingerprint(folder):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.glob("*.ipynb"))}


def test_make_lab_serves_the_course(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    # Loopback, a token, no browser; port_retries=0 so a taken port fails at once instead of moving elsewhere.
    lab_args = " ".join([f"--no-browser --port={port} --ServerApp.token={token} --ServerApp.ip=127.0.0.1",
                         "--ServerApp.port_retries=0", *root_flags()])
    # `-o .venv/.installed`: never reinstall from inside a test (`make test` has just made the environment).
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "lab", f"LAB_ARGS={lab_args}"]
    committed = _fingerprint(ROOT / "notebooks")
    start = time.monotonic()
    with serve(command, cwd=ROOT, env=lab_environment(tmp_path), port=port, token=token,
               log=tmp_path / "make-lab.log") as base:
        print(f"make lab answered after {time.monotonic() - start:.1f} s")
        status, body = http_get(f"{base}/lab?token={token}")
        assert status == 200 and "JupyterLab" in body, (status, body[:500])
        assert http_get(f"{base}/api/contents/notebooks")[0] == 403, "the contents API answered without the token"
        status, body = http_get(f"{base}/api/contents/notebooks?token={token}")
        assert status == 200, body[:500]
        listed = sorted(item["name"] for item in json.loads(body)["content"] if item["name"].endswith(".ipynb"))
        lessons = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
        assert lessons, "notebooks/ holds no lesson"
        assert listed == lessons
    assert _fingerprint(ROOT / "notebooks") == committed, "serving the course changed a lesson"
