"""Machinery for tests/test_browser.py: a JupyterLab server on loopback, headless Chromium, and page reads.

Kept apart from the test so each step reads as one line there. Everything here waits by polling the page
or the server with a deadline; nothing sleeps for a fixed long time. Servers and the browser are context
managers that shut down whatever happens inside them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import nbformat

__all__ = [
    "CHROMIUM", "CHROMEDRIVER", "CHROME_FLAGS", "browser_missing", "free_port", "http_get", "wait_until",
    "copy_without_outputs", "lab_environment", "ServerExited", "serve", "root_flags", "lab_command", "chromium",
    "LabPage",
]

# Debian's packages (apt-get install chromium chromium-driver); the test never downloads a browser.
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
)

# Output lines the course's checks print (the grader's verdict words), and what an error output looks like.
VERDICT = re.compile(r"^(PASS|FAIL|TODO|ERROR|TIMEOUT)\b")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception|Interrupt)\b", re.MULTILINE)

T = TypeVar("T")


class ServerExited(RuntimeError):
    """The server process ended while a test waited for it (waiting longer cannot help)."""


def browser_missing() -> str | None:
    """Why the browser test cannot run here (None when it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing: apt-get install chromium chromium-driver (as .ci/run does)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Local requests only: never through a proxy that the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    """Status and body of a GET (an HTTP error status is returned, not raised)."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def wait_until(probe: Callable[[], T], timeout: float, what: str, every: float = 0.25) -> T:
    """Call `probe` until it returns something truthy (returned); fail after `timeout` s naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except ServerExited:
            raise
        except Exception as err:  # a page mid-render can throw; keep polling, report the last one
            last_error = err
        if time.monotonic() > deadline:
            extra = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise TimeoutError(f"waited {timeout:.0f} s for {what}{extra}")
        time.sleep(every)


def copy_without_outputs(src: Path, dst: Path) -> Path:
    """Copy a notebook with every output and execution count cleared, so what the page shows is new."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return dst


def lab_environment(state: Path) -> dict[str, str]:
    """The environment for a test's JupyterLab: settings, workspaces and runtime files under `state`.

    The user's own JupyterLab settings and saved workspaces never leak in, and the news/update toasts
    (which ask for the network) are switched off.
    """
    settings = state / "settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(state / "runtime"),
        JUPYTER_CONFIG_DIR=str(state / "config"),
        GPTCOURSE_RUNS=str(state / "runs"),
        PYTHONUNBUFFERED="1",
    )
    return env


def root_flags() -> list[str]:
    """Jupyter refuses to start as root (CI's user) unless told to; nothing else changes."""
    return ["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def lab_command(jupyter: Path, port: int, token: str) -> list[str]:
    """`jupyter lab` on loopback with a token and no browser of its own."""
    return [
        str(jupyter), "lab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True",
        *root_flags(),
    ]


def _stop(proc: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then end its process group if anything is left."""
    if proc.poll() is None:
        try:
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            _OPENER.open(request, timeout=5).close()
            proc.wait(timeout=15)
        except Exception:  # not answering or too slow: signals below
            pass
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)  # the group: for `make lab`, make and its jupyter (which stops its kernels)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=10)


@contextmanager
def serve(command: list[str], *, cwd: Path, env: dict[str, str], port: int, token: str, log: Path,
          timeout: float = 120) -> Iterator[str]:
    """Start a Jupyter server (`command`) in its own process group; yield its base URL once it answers."""
    base = f"http://127.0.0.1:{port}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise ServerExited(f"the server exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                return http_get(f"{base}/api/status?token={token}", timeout=2)[0] == 200
            except OSError:  # not listening yet
                return False

        try:
            wait_until(ready, timeout, f"Jupyter server on port {port}", every=0.5)
        except TimeoutError as err:
            raise TimeoutError(f"{err}; its log:\n{log.read_text()[-3000:]}") from None
        yield base
    finally:
        _stop(proc, base, token)


@contextmanager
def chromium(profile: Path, log: Path) -> Iterator[object]:
    """Headless Debian Chromium driven by Debian's chromedriver (Selenium never looks for a driver itself)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(60)
        # A headless window never has the operating system's focus, and recent JupyterLab only makes a notebook
        # the current widget (the one Run All acts on) on a focus event: tell the page it has focus.
        driver.execute_cdp_cmd("Emulation.setFocusEmulationEnabled", {"enabled": True})
        yield driver
    finally:
        driver.quit()  # ends Chromium and chromedriver


# JavaScript run in the page; the server exposes the app as `window.jupyterapp` (expose_app_in_browser), so the
# test reads the kernel's real state instead of guessing it from icons. Texts via textContent (not Selenium's
# visible text) so that cells the notebook renders lazily (content-visibility) still count.
_JS_CURRENT = """
const app = window.jupyterapp;
const w = app && app.shell && app.shell.currentWidget;
if (!w || !w.context || !w.node.classList.contains('jp-NotebookPanel')) return null;
"""
_JS_STATE = _JS_CURRENT + """
const s = w.sessionContext && w.sessionContext.session;
const k = s && s.kernel;
return {
  path: w.context.path,
  kernel: k ? k.status : null,
  connection: k ? k.connectionStatus : null,
  dialogs: document.querySelectorAll('.jp-Dialog').length,
  prompts: [...w.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim()),
};
"""
_JS_OUTPUTS = _JS_CURRENT + """
return [...w.node.querySelectorAll('.jp-OutputArea-output')].map(e => ({
  mime: e.getAttribute('data-mime-type') || '', text: e.textContent}));
"""


class LabPage:
    """One JupyterLab page in the browser, read and driven the way a learner would use it."""

    def __init__(self, driver, base: str, token: str, shots: Path):
        self.driver, self.base, self.token, self.shots = driver, base, token, shots
        self.shots.mkdir(parents=True, exist_ok=True)
        self.workspaces = 0

    def open_notebook(self, path: str, timeout: float = 120) -> None:
        """Open `path` (relative to the server's root) alone in a fresh workspace; wait for its kernel."""
        self.workspaces += 1  # a new, empty workspace: the notebook opens alone, no tab from before
        self.driver.get(f"{self.base}/lab/workspaces/test{self.workspaces}/tree/{path}?token={self.token}")

        def loaded() -> bool:
            state = self.state()
            return bool(state and state["path"] == path and state["prompts"] and state["kernel"] == "idle"
                        and state["connection"] == "connected" and not state["dialogs"])

        try:
            wait_until(loaded, timeout, f"{path} open with a connected, idle kernel")
        except TimeoutError as err:
            self.screenshot("failed_to_open")
            raise TimeoutError(f"{err}; state now: {self.state()}") from None

    def state(self) -> dict | None:
        """The current notebook: path, kernel status ('idle', 'busy', ...), connection, open dialogs, prompts."""
        return self.driver.execute_script(_JS_STATE)

    def run_all_cells(self, timeout: float) -> float:
        """Run > Run All Cells from the menu bar; wait until the run ends and the kernel is idle; seconds taken."""
        from selenium.webdriver.common.by import By

        menus = self.driver.find_elements(By.CSS_SELECTOR, "#jp-menu-panel .lm-MenuBar-item")
        run_menu = next(m for m in menus if m.text.strip() == "Run")
        run_menu.click()
        item = wait_until(lambda: self.menu_item("Run All Cells"), 10, "the Run menu's 'Run All Cells'")
        start = time.monotonic()
        item.click()

        def finished() -> bool:  # nothing queued any more and something ran (a failing cell stops the rest)
            state = self.state()
            return bool(state and state["kernel"] == "idle" and state["connection"] == "connected"
                        and "[*]:" not in state["prompts"]
                        and any(re.fullmatch(r"\[\d+\]:", p) for p in state["prompts"]))

        try:
            wait_until(finished, timeout, "every cell to run and the kernel to be idle", every=0.5)
        except TimeoutError as err:
            self.screenshot("failed_to_run")
            raise TimeoutError(f"{err}; state now: {self.state()}; errors: {self.error_outputs()}") from None
        return time.monotonic() - start

    def menu_item(self, label: str):
        """The item of the open menu whose label reads `label` (None while there is none)."""
        from selenium.webdriver.common.by import By

        for item in self.driver.find_elements(By.CSS_SELECTOR, ".lm-Menu .lm-Menu-item"):
            found = item.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")
            if found and found[0].get_attribute("textContent").strip() == label:
                return item
        return None

    def outputs(self) -> list[dict]:
        """Every output on the current notebook: its MIME type and its text."""
        return self.driver.execute_script(_JS_OUTPUTS)

    def error_outputs(self) -> list[str]:
        """The texts of outputs that show an exception (JupyterLab renders errors as stderr text)."""
        return [o["text"][-1500:] for o in self.outputs()
                if o["mime"] == "application/vnd.jupyter.stderr" and TRACEBACK.search(o["text"])]

    def verdicts(self) -> list[str]:
        """Lines on the page that start with a check's verdict word (PASS, FAIL, TODO, ERROR, TIMEOUT)."""
        lines = (line.strip() for o in self.outputs() for line in o["text"].splitlines())
        return [line for line in lines if VERDICT.match(line)]

    def scroll_to(self, element) -> None:
        """Bring `element` to the middle of the notebook's viewport (for the screenshot), once layout settles.

        Cells off screen are laid out lazily, so the first scroll can land short: scroll until it stays put.
        """
        js = ("arguments[0].scrollIntoView({block: 'center'});"
              "const r = arguments[0].getBoundingClientRect(); return [Math.round(r.top), Math.round(r.height)];")
        seen = []

        def settled() -> bool:
            seen.append(self.driver.execute_script(js, element))
            return len(seen) > 1 and seen[-1] == seen[-2]

        wait_until(settled, 10, "the notebook to stop moving after a scroll", every=0.2)

    def screenshot(self, name: str) -> Path:
        """Save what the browser shows as test-artifacts/browser/<name>.png."""
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
