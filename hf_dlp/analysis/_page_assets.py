"""The style sheet and the script of the analysis page (`hf_dlp.analysis.page`), hand-written, with no library.

The script reads the page's data from `<script type="application/json" id="hf-dlp-data">` and builds every response
token as a `<span>` whose text is set with `textContent` (never `innerHTML`), so a response's text stays text.
"""

from __future__ import annotations

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; } td { white-space: nowrap; }
td.context { font-family: monospace; text-align: left; white-space: pre; }
mark { background: #ffe08a; }
figure { display: inline-block; margin: 0.5em; } figure img { max-width: 100%; border: 1px solid #eee; }
.meta, .note { color: #555; font-size: 0.9em; }
#controls { position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd; z-index: 2; }
#controls label { margin-right: 1.2em; }
#tau { vertical-align: middle; width: 18em; }
#hover-info { position: fixed; bottom: 0; left: 0; right: 0; background: #fafafa; border-top: 1px solid #ccc;
  padding: 0.3em 1em; font-family: monospace; font-size: 0.9em; min-height: 1.3em; }
.response { border: 1px solid #ddd; border-radius: 4px; margin: 0.7em 0; padding: 0.4em 0.6em; }
.response[hidden] { display: none; }
.response-head { font-size: 0.85em; color: #444; margin-bottom: 0.3em; }
.prompt { font-family: monospace; white-space: pre-wrap; color: #777; font-size: 0.85em; margin-bottom: 0.3em; }
.tokens { font-family: monospace; white-space: pre-wrap; line-height: 1.7; }
.tok { border-radius: 2px; }
.tok.sel { outline: 2px solid #111; outline-offset: -1px; }
.tok.empty { color: #999; }
.swap del { background: #c6dbef; text-decoration: line-through; }
.swap ins { background: #fcbba1; text-decoration: none; font-weight: bold; }
.legend span { display: inline-block; width: 3.2em; text-align: center; font-size: 0.75em; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("hf-dlp-data").textContent);
  var S = data.color_steps, L = data.color_limit, vocab = data.vocab;
  function level(v) { return Math.max(-S, Math.min(S, Math.floor(v / L * S + 0.5))); }
  function fmt(v, digits) { return v === null || v === undefined ? "n/a" : v.toFixed(digits); }
  function tokenText(text) { return text === undefined || text === "" ? "\u2205" : text; }
  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  var container = document.getElementById("responses");
  var items = [];
  data.responses.forEach(function (r) {
    var box = element("div", "response");
    var head = "#" + r.i + " \u00b7 " + r.s + "-written";
    if (r.c !== null) head += r.c ? " \u00b7 correct" : " \u00b7 incorrect";
    head += " \u00b7 " + r.n + " tokens";
    if (r.t.length < r.n) head += " (first " + r.t.length + " shown)";
    head += " \u00b7 mean \u0394log p " + fmt(r.m, 3);
    box.appendChild(element("div", "response-head", head));
    if (r.p) box.appendChild(element("div", "prompt", r.p));
    var body = element("div", "tokens"), spans = [], largest = 0;
    for (var k = 0; k < r.t.length; k++) {
      var d = r.d[k], text = vocab[r.t[k]];
      var span = element("span", "tok lv" + (level(d === null ? 0 : d) + S), tokenText(text));
      if (text === undefined || text === "") span.classList.add("empty");
      span.hfIndex = k;
      span.hfResponse = r;
      body.appendChild(span);
      spans.push(span);
      if (d !== null && Math.abs(d) > largest) largest = Math.abs(d);
    }
    box.appendChild(body);
    container.appendChild(box);
    items.push({ box: box, r: r, spans: spans, largest: largest, order: items.length });
  });

  var tauInput = document.getElementById("tau"), tauValue = document.getElementById("tau-value");
  var count = document.getElementById("selected-count"), shown = document.getElementById("shown-tokens");
  var share = document.getElementById("selected-share"), sourceFilter = document.getElementById("source-filter");
  var correctFilter = document.getElementById("correct-filter"), sortBox = document.getElementById("sort-abs");
  function visible(item) {
    if (sourceFilter.value && item.r.s !== sourceFilter.value) return false;
    if (correctFilter && correctFilter.value) {
      if (item.r.c === null || (correctFilter.value === "correct") !== item.r.c) return false;
    }
    return true;
  }
  function update() {
    var tau = parseFloat(tauInput.value), selected = 0, total = 0;
    tauValue.textContent = tau.toFixed(2);
    items.forEach(function (item) {
      var show = visible(item);
      item.box.hidden = !show;
      item.spans.forEach(function (span, k) {
        var d = item.r.d[k], pick = d !== null && d <= tau;
        span.classList.toggle("sel", pick);
        if (show) { total += 1; if (pick) selected += 1; }
      });
    });
    count.textContent = String(selected);
    shown.textContent = String(total);
    share.textContent = total ? (100 * selected / total).toFixed(1) + "%" : "n/a";
  }
  function reorder() {
    var sorted = items.slice().sort(function (a, b) {
      return sortBox.checked ? (b.largest - a.largest) || (a.order - b.order) : a.order - b.order;
    });
    sorted.forEach(function (item) { container.appendChild(item.box); });
  }
  tauInput.addEventListener("input", update);
  sourceFilter.addEventListener("change", update);
  if (correctFilter) correctFilter.addEventListener("change", update);
  sortBox.addEventListener("change", reorder);

  var info = document.getElementById("hover-info");
  container.addEventListener("mouseover", function (event) {
    var span = event.target;
    if (!span.classList || !span.classList.contains("tok")) return;
    var r = span.hfResponse, k = span.hfIndex;
    var text = "token " + JSON.stringify(vocab[r.t[k]] || "") + " \u00b7 \u0394log p " + fmt(r.d[k], 3) +
      " \u00b7 log \u03c0_base " + fmt(r.b[k], 3) + " \u00b7 log \u03c0_RL " + fmt(r.l[k], 3) +
      " \u00b7 H(base) " + fmt(r.h[k], 4) + " \u00b7 KL(RL\u2016base) " + fmt(r.k[k], 4);
    info.textContent = text;
    span.title = text;
  });

  var replaced = document.getElementById("replaced");
  data.replaced.forEach(function (rep) {
    var box = element("div", "response"), swaps = {};
    var head = rep.label + " \u00b7 " + rep.swaps.length + " position(s) selected";
    if (rep.c !== null) head += rep.c ? " \u00b7 correct" : " \u00b7 incorrect";
    box.appendChild(element("div", "response-head", head));
    rep.swaps.forEach(function (swap) { swaps[swap.position] = swap; });
    var body = element("div", "tokens");
    rep.tokens.forEach(function (text, k) {
      var swap = swaps[k];
      if (!swap) { body.appendChild(element("span", "tok", tokenText(text))); return; }
      var span = element("span", "tok swap");
      span.appendChild(element("del", "", tokenText(swap.base_token)));
      span.appendChild(element("ins", "", tokenText(swap.rl_token)));
      span.title = "base " + JSON.stringify(swap.base_token) + " (\u0394log p " + fmt(swap.base_delta_logp, 3) +
        ") \u2192 RL " + JSON.stringify(swap.rl_token) + " (\u0394log p " + fmt(swap.rl_delta_logp, 3) + ")";
      body.appendChild(span);
    });
    box.appendChild(body);
    replaced.appendChild(box);
  });
  update();
  document.body.setAttribute("data-ready", "1");
})();
"""
