"""Open a page in Debian's chromium, headless, and report what a reader would see: the console
errors and, for every chart, whether it drew anything.

The page is a copy of the file with a probe script first in its <head>: it records console.error
calls and uncaught errors, waits until the charts have been drawn, counts the drawn pixels of
every <canvas> and the marks of every chart <svg>, and writes its findings into the DOM, which
`chromium --headless --dump-dom` prints once the virtual time budget (timers run instantly) has
passed. chromium's own log (--enable-logging=stderr) is read too: an error the probe could not
catch (a script that fails to parse) shows there as a CONSOLE line."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

PROBE_ID = "seconetbench-browser-probe"
PROBE = """<script>
(function () {
  const errors = [];
  const original = console.error.bind(console);
  console.error = function (...args) { errors.push(args.map(String).join(' ')); original(...args); };
  window.addEventListener('error', (event) => errors.push('uncaught: ' + event.message));
  window.addEventListener('unhandledrejection', (event) => errors.push('unhandled rejection: ' + event.reason));
  function charts() {
    const found = [];
    document.querySelectorAll('canvas').forEach((canvas) => {
      let drawn = 0;
      if (canvas.width > 0 && canvas.height > 0) {
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) drawn++; }
      }
      found.push({kind: 'canvas', width: canvas.width, height: canvas.height, drawn: drawn});
    });
    document.querySelectorAll('svg.marks').forEach((svg) => {
      const box = svg.getBoundingClientRect();
      found.push({kind: 'svg', width: box.width, height: box.height, drawn: svg.querySelectorAll('path, text, line, rect').length});
    });
    return found;
  }
  function report(waited) {
    let out = document.getElementById('PROBE_ID');
    if (!out) { out = document.createElement('pre'); out.id = 'PROBE_ID'; document.body.appendChild(out); }
    out.textContent = JSON.stringify({errors: errors, charts: charts(), waited: waited});
  }
  let waited = 0;
  function poll() {
    waited += 100;
    const expected = document.querySelectorAll('.vega-embed, [id^="vis"]').length;
    const drawn = charts().filter((c) => c.drawn > 0).length;
    report(waited);
    if ((expected === 0 || drawn < expected) && waited < 20000) setTimeout(poll, 100);
  }
  window.addEventListener('load', () => setTimeout(poll, 100));
})();
</script>""".replace("PROBE_ID", PROBE_ID)
CONSOLE_LINE = re.compile(r":(?:INFO|WARNING|ERROR):CONSOLE\(\d+\)\] \"(.*)\", source: (.*)$", re.MULTILINE)


@dataclass
class PageView:
    errors: list[str]  # console.error calls, uncaught errors and rejections
    charts: list[dict]  # per <canvas> or chart <svg>: kind, width, height, drawn (pixels or marks)
    console: list[str]  # chromium's log of the page's console
    dom: str


def chromium_binary() -> str:
    """Debian's chromium; skips the test without it, and fails under CI (a green CI must not hide
    a missing install step: tools/setup.sh browser installs it)."""
    found = shutil.which("chromium")
    if found is None:
        message = "chromium is missing (make setup-browser: tools/setup.sh browser installs Debian's chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def open_page(page: Path, budget_ms: int = 30000, timeout_s: float = 180) -> PageView:
    """*page* as headless chromium shows it (a probed copy, see the module's docstring)."""
    binary = chromium_binary()
    text = page.read_text(encoding="utf-8", errors="replace")
    head = re.search(r"<head[^>]*>", text, re.IGNORECASE)
    probed = text[:head.end()] + PROBE + text[head.end():] if head else PROBE + text
    with tempfile.TemporaryDirectory(prefix="seconetbench-chromium-") as scratch:
        copy = Path(scratch) / page.name
        copy.write_text(probed, encoding="utf-8")
        profile = Path(scratch) / "profile"
        # --no-sandbox: the tests run as root, where chromium's sandbox refuses to start
        argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                "--enable-logging=stderr", "--v=1", f"--virtual-time-budget={budget_ms}",
                "--dump-dom", copy.as_uri()]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    found = re.search(rf'<pre id="{PROBE_ID}">(.*?)</pre>', done.stdout, re.DOTALL)
    if found is None:
        raise AssertionError(f"the probe wrote nothing into {page.name}: the page did not load; "
                             f"chromium said: {done.stderr[-2000:]}")
    probe = json.loads(html.unescape(found.group(1)))
    console = [f"{message} ({source})" for message, source in CONSOLE_LINE.findall(done.stderr)]
    return PageView(errors=probe["errors"], charts=probe["charts"], console=console, dom=done.stdout)
