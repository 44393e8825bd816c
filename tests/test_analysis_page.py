"""The analysis page: valid, self-contained HTML that escapes hostile completions and stays small; and, in the slow
suite, the same page in a real headless Chromium (Debian's `chromium` and `chromium-driver`, `make test-browser`)."""

from __future__ import annotations

import base64
import html.parser
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from hf_dlp.analysis import METRIC_NAMES, AnalysisReport, ReplacedResponse, TokenSwap, write_analysis_page
from hf_dlp.analysis.page import (
    DEFAULT_MAX_RESPONSES,
    delta_level,
    level_color,
    page_responses,
    render_analysis_page,
    selected_count,
)

HOSTILE = "</script><script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(2)>"
VOID = {"meta", "img", "input", "br", "hr", "link", "source", "wbr", "col", "area", "base", "embed", "track"}


class _Checker(html.parser.HTMLParser):
    """Balanced tags (void elements excepted), and the tags and attributes the page uses."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.sources, self.data = [], [], [], [], {}
        self._script = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        self.sources += [attrs[name] for name in ("src", "href") if name in attrs]
        if tag == "script":
            self._script = attrs.get("id", "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script:
            self.data[self._script] = self.data.get(self._script, "") + data


def _check(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert checker.tags.count("html") == 1 and checker.tags.count("body") == 1
    # No network fetch: images are data URIs, links are anchors in the page.
    assert all(s.startswith(("data:image/png;base64,", "#")) for s in checker.sources) and checker.sources
    return checker


def _report(num_responses: int = 6, tokens: int = 12, vocab: int = 20, hostile: bool = False) -> AnalysisReport:
    generator = torch.Generator().manual_seed(0)
    n = num_responses * tokens
    values = {name: torch.rand(n, generator=generator) for name in METRIC_NAMES}
    values["delta_logp"] = 3 * torch.randn(n, generator=generator)
    values["rl_logp"] = values["base_logp"] + values["delta_logp"]
    ids = torch.randint(0, vocab, (n,), generator=generator)
    text = {i: f"w{i} " for i in range(vocab)}
    if hostile:
        ids[:2] = torch.tensor([0, 1])
        text.update({0: HOSTILE, 1: IMAGE})
    sources = ["base", "rl"] * (num_responses // 2)
    response = torch.arange(num_responses).repeat_interleave(tokens)
    return AnalysisReport(values, response, sources, {"base_model": "<b>base</b>"}, token_ids=ids, token_text=text)


def test_the_page_is_valid_self_contained_html(tmp_path):
    report = _report()
    replaced = [ReplacedResponse("delta_logp, τ = -0.5", ["1", "+", "8"], [TokenSwap(2, "7", "8", -1.2, 0.4)])]
    path = write_analysis_page(report, tmp_path, rewards=[1.0, 0.0, None, 1.0, 0.0, 0.0], replaced=replaced)
    page = path.read_text()
    checker = _check(page)
    assert path.name == "index.html" and page.count("<img") == 3  # Fig. 1b, every metric, the position profile
    for needle in ('id="tau"', 'id="selected-count"', 'id="source-filter"', 'id="correct-filter"', 'id="sort-abs"'):
        assert needle in page
    assert "What the replacement swapped" in page and "fetch(" not in page and "://" not in page
    data = json.loads(checker.data["hf-dlp-data"])
    assert [r["c"] for r in data["responses"]] == [True, False, None, True, False, False]
    assert data["replaced"][0]["swaps"][0] == {
        "position": 2,
        "base_token": "7",
        "rl_token": "8",
        "base_delta_logp": -1.2,
        "rl_delta_logp": 0.4,
    }
    assert 'id="correct-filter"' not in render_analysis_page(report)  # no rewards, no correctness filter


def test_hostile_completions_stay_text():
    report = _report(hostile=True)
    page = render_analysis_page(report, prompts=[HOSTILE] * report.num_responses)
    checker = _check(page)
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>base" not in page
    assert checker.tags.count("script") == 2  # the data and the page's own script, nothing injected
    data = json.loads(checker.data["hf-dlp-data"])
    assert data["vocab"]["0"] == HOSTILE and data["vocab"]["1"] == IMAGE  # intact once parsed
    assert data["responses"][0]["p"] == HOSTILE
    assert "textContent" in page and "innerHTML" not in page


def test_page_responses_and_the_selected_count():
    report = _report(num_responses=6, tokens=12)
    responses = page_responses(report, max_responses=3, max_tokens=5)
    assert [(r["i"], r["s"]) for r in responses] == [(0, "base"), (1, "rl"), (2, "base")]
    assert all(len(r["t"]) == 5 and r["n"] == 12 for r in responses)
    flat = [round(v, 3) for r in range(3) for v in report.token_values["delta_logp"][r * 12 : r * 12 + 5].tolist()]
    assert [d for r in responses for d in r["d"]] == flat
    assert selected_count(responses, -0.35) == (sum(d <= -0.35 for d in flat), 15)
    with pytest.raises(ValueError, match="`rewards` has 2 entries but the report has 6 responses"):
        page_responses(report, rewards=[1.0, 0.0])


def test_colour_levels():
    assert [delta_level(v) for v in (-3.0, -2.0, -0.125, -0.124, 0.0, 0.124, 0.125, 2.5)] == [-8, -8, 0, 0, 0, 0, 1, 8]
    assert level_color(0) == "rgb(255, 255, 255)" and level_color(8) == "rgb(178, 24, 43)"


def test_a_large_analysis_gives_a_small_page(tmp_path):
    report = _report(num_responses=1000, tokens=1000, vocab=5000)  # a million tokens
    path = report.save(tmp_path, plots=False, html=True)
    size = (path / "index.html").stat().st_size
    assert size < 5 * 2**20, f"page of {size / 2**20:.1f} MiB"
    page = (path / "index.html").read_text()
    data = json.loads(_check(page).data["hf-dlp-data"])
    assert len(data["responses"]) == DEFAULT_MAX_RESPONSES
    assert f"Showing {DEFAULT_MAX_RESPONSES} of 1000 responses" in page
    assert len(json.loads((path / "analysis.json").read_text())["responses"]) == 1000  # the rest in the JSON


def test_a_report_without_token_ids_still_gets_a_page():
    values = {name: torch.tensor([0.5, -0.5]) for name in METRIC_NAMES}
    page = render_analysis_page(AnalysisReport(values, torch.tensor([0, 1]), ["rl", "base"]))
    assert "no token ids" in page
    _check(page)


# --- the slow suite: the page in a real headless Chromium ------------------------------------------------------------
RUN_SLOW = os.environ.get("HF_DLP_RUN_SLOW") == "1"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


class _WebDriver:
    """A few W3C WebDriver calls to Debian's chromedriver over HTTP (nothing downloads a browser or a driver)."""

    def __init__(self, tmp_path: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                self._call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        options = {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1280,1600",
                f"--user-data-dir={tmp_path / 'profile'}",
            ],
        }
        capabilities = {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        }
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["value"]

    def call(self, method: str, path: str, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def run(self, script: str, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def close(self):
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.mark.skipif(not RUN_SLOW, reason="opens a headless browser; set HF_DLP_RUN_SLOW=1 (`make test-browser`)")
@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="needs Debian's chromium and chromium-driver")
def test_the_page_in_a_headless_browser(tmp_path):
    report = _report(num_responses=8, tokens=40, hostile=True)
    replaced = [ReplacedResponse("delta_logp, τ = -0.5", ["1", "+", "8"], [TokenSwap(2, "7", "8", -1.2, 0.4)])]
    path = write_analysis_page(report, tmp_path, rewards=[1.0, 0.0] * 4, replaced=replaced)
    responses = page_responses(report, rewards=[1.0, 0.0] * 4)
    driver = _WebDriver(tmp_path)
    try:
        driver.call("POST", "/url", {"url": path.as_uri()})
        assert driver.run("return document.body.getAttribute('data-ready');") == "1"  # the script ran to its end
        spans = driver.run(
            "return Array.from(document.querySelectorAll('#responses .tok')).map("
            "s => [s.textContent, getComputedStyle(s).backgroundColor]);"
        )
        expected = [(report.token_text[i], d) for r in responses for i, d in zip(r["t"], r["d"], strict=True)]
        assert len(spans) == len(expected) == 8 * 40
        for (text, colour), (want_text, delta) in zip(spans, expected, strict=True):
            assert text == want_text and colour == level_color(delta_level(delta))
        assert driver.run("return document.querySelectorAll('script').length;") == 2  # hostile text stayed text
        slider = driver.call("POST", "/element", {"using": "css selector", "value": "#tau"})
        element = next(iter(slider.values()))
        for _ in range(7):  # seven steps left with the keyboard: τ = -0.35 - 7 · 0.05
            driver.call("POST", f"/element/{element}/value", {"text": "\ue012"})
        for tau in (None, 1.5):
            if tau is not None:
                driver.run(
                    "var s = document.getElementById('tau'); s.value = arguments[0];"
                    "s.dispatchEvent(new Event('input'));",
                    str(tau),
                )
            value = float(driver.run("return document.getElementById('tau').value;"))
            shown = driver.run(
                "return [document.getElementById('selected-count').textContent,"
                "document.getElementById('shown-tokens').textContent,"
                "document.querySelectorAll('#responses .tok.sel').length];"
            )
            selected, total = selected_count(responses, value)
            assert (int(shown[0]), int(shown[1]), shown[2]) == (selected, total, selected)
        assert value == 1.5 and driver.run("return document.querySelectorAll('.swap').length;") == 1
        driver.run(
            "var f = document.getElementById('source-filter'); f.value = 'rl';f.dispatchEvent(new Event('change'));"
        )
        rl_only = [r for r in responses if r["s"] == "rl"]
        assert (
            int(driver.run("return document.getElementById('selected-count').textContent;"))
            == selected_count(rl_only, 1.5)[0]
        )
        driver.run(
            "var f = document.getElementById('source-filter'); f.value = '';"
            "f.dispatchEvent(new Event('change')); var c = document.getElementById('correct-filter');"
            "c.value = 'correct'; c.dispatchEvent(new Event('change'));"
        )
        correct = [r for r in responses if r["c"]]
        assert (
            int(driver.run("return document.getElementById('selected-count').textContent;"))
            == selected_count(correct, 1.5)[0]
        )
        driver.run(
            "var c = document.getElementById('correct-filter'); c.value = ''; c.dispatchEvent(new Event('change'));"
            "var b = document.getElementById('sort-abs'); b.click();"
        )
        heads = driver.run(
            "return Array.from(document.querySelectorAll('#responses .response-head')).map(h => h.textContent);"
        )
        largest = {r["i"]: max(abs(d) for d in r["d"]) for r in responses}
        assert [int(h.split(" ")[0][1:]) for h in heads] == sorted(largest, key=lambda i: (-largest[i], i))
        hover = driver.run(
            "var s = document.querySelector('#responses .tok');"
            "s.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));"
            "return [s.hfResponse.i, s.hfIndex, document.getElementById('hover-info').textContent, s.title];"
        )
        first = next(r for r in responses if r["i"] == hover[0])
        for value in (first["d"][0], first["b"][0], first["l"][0]):
            assert f"{value:.3f}" in hover[2]
        assert f"{first['h'][0]:.4f}" in hover[2] and f"{first['k'][0]:.4f}" in hover[2] and hover[3] == hover[2]
        driver.run(
            "var f = document.getElementById('source-filter'); f.value = '';"
            "f.dispatchEvent(new Event('change'));"
            "document.getElementById('responses-section').scrollIntoView();"
        )
        logs = driver.call("POST", "/se/log", {"type": "browser"})
        assert [entry for entry in logs if entry.get("level") == "SEVERE"] == []
        screenshot = Path(os.environ.get("HF_DLP_SCREENSHOT_DIR", tmp_path)) / "analysis_page.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(driver.call("GET", "/screenshot")))
        assert screenshot.stat().st_size > 10_000
    finally:
        driver.close()
