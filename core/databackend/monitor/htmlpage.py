"""One self-contained HTML page from :func:`databackend.monitor.reportdata.collect_report`.

Every script and style is inlined (Vega, Vega-Lite and vega-embed from the ``vl-convert-python``
package's bundle), so the page works offline and as a CI artifact. Plots are Vega-Lite specs
rendered to SVG in the browser, with tooltips; tables are plain HTML. When every plot has drawn,
``<body data-plots="done">`` is set (``"error"`` and a console error if one failed).
"""

from __future__ import annotations

import functools
import html
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from databackend.monitor import charts
from databackend.monitor.reportdata import summarise_datasets

__all__ = ["render_html", "vega_bundle"]

log = logging.getLogger(__name__)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 24px;
color:#222}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;
padding-bottom:4px;margin-top:32px}h3{font-size:15px;margin:18px 0 6px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.chart{min-width:480px;min-height:120px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}.num{text-align:right}
.muted{color:#777}.bar{background:#eee;width:120px;height:10px;display:inline-block}
.bar>i{background:#54a24b;height:10px;display:block}code{font-size:12px}
"""

_INIT = """
(function () {
  var specs = JSON.parse(document.getElementById("db-specs").textContent);
  var ids = Object.keys(specs);
  Promise.all(ids.map(function (id) {
    return vegaEmbed("#" + id, specs[id], {renderer: "svg", actions: false})
      .then(function () { document.getElementById(id).setAttribute("data-drawn", "1"); });
  })).then(function () { document.body.setAttribute("data-plots", "done"); },
           function (err) { document.body.setAttribute("data-plots", "error");
                            console.error("plot failed: " + err); });
})();
"""


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega + Vega-Lite + vega-embed as one script (from ``vl-convert-python``).

    Building the bundle takes seconds, so it is kept per ``vl-convert`` version under
    ``$XDG_CACHE_HOME/databackend`` (default ``~/.cache/databackend``) when that is writable.
    """
    try:
        import vl_convert
    except ImportError as exc:
        raise ImportError("the HTML report needs vl-convert-python "
                          "(pip install 'databackend[report]')") from exc
    version = getattr(vl_convert, "__version__", "unknown")
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    path = Path(cache_home) / "databackend" / f"vega-bundle-{version}.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle = vl_convert.javascript_bundle()  # type: ignore[call-arg]
    text = str(bundle).replace("</script", "<\\/script")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("vega bundle not cached at %s: %s", path, exc)
    return text


class _Page:
    """Collects HTML parts and chart specs (one id per chart)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.specs: dict[str, Any] = {}

    def add(self, text: str) -> None:
        """Append HTML."""
        self.parts.append(text)

    def chart(self, spec: Mapping[str, Any] | None, empty: str) -> str:
        """A chart's placeholder div, or a note when there is nothing to draw."""
        if spec is None:
            return f'<div class="chart muted">{html.escape(empty)}</div>'
        cid = f"chart-{len(self.specs)}"
        self.specs[cid] = dict(spec)
        return f'<div class="chart" id="{cid}"></div>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _coverage_rows(caches: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for c in caches:
        share = c["present"] / c["needed"] if c["needed"] else 1.0
        bar = f'<span class="bar"><i style="width:{100 * share:.0f}%"></i></span>'
        rows.append([_esc(c["kind"]), _esc(c["name"]), f"<code>{_esc(c['identity'])}</code>",
                     f"<code>{_esc(c['location'])}</code>",
                     f"{bar} {c['present']:,} / {c['needed']:,} ({100 * share:.1f}%)"])
    return rows


def _config_section(page: _Page, data: Mapping[str, Any]) -> None:
    build, graph = data["build"], data["graph"]
    page.add("<h2>Config</h2>")
    page.add(_table(["dataset", "samples", "skipped", "buckets", "short / partial buckets",
                     "no caption"], [[_esc(c) for c in r]
                                     for r in summarise_datasets(data["datasets"])]))
    page.add('<div class="grid">')
    page.add(page.chart(charts.graph_chart(graph["nodes"], graph["edges"])
                        if graph["nodes"] else None, "no entries"))
    page.add(page.chart(charts.stage_chart(build["stages"]) if build.get("stages") else None,
                        "no build figures"))
    page.add("</div>")
    page.add(f"<p>Last build: {build.get('total_seconds', 0):.2f} s, peak RSS "
             f"{build.get('peak_rss_mb', 0):.1f} MB ({_esc(build.get('source', 'run metrics'))})"
             f"; sampling policy <b>{_esc(data['policy'])}</b>.</p>")
    if data["caches"]:
        page.add("<h3>Cache coverage</h3>")
        page.add(_table(["kind", "cache", "encoder identity", "location", "entries present"],
                        _coverage_rows(data["caches"])))


def _run_section(page: _Page, run: Mapping[str, Any] | None) -> None:
    if not run:
        return
    page.add(f"<h2>Run</h2><p>{run['steps']} metrics lines.</p><div class='grid'>")
    page.add(page.chart(charts.share_chart(run["shares"], run["targets"])
                        if run["shares"] else None, "no steps recorded"))
    page.add(page.chart(charts.wait_chart(run["wait"]) if run["wait"] else None,
                        "no steps recorded"))
    page.add("</div>")


def _dataset_section(page: _Page, d: Mapping[str, Any]) -> None:
    cap = d["captions"]
    page.add(f"<h2>Dataset <code>{_esc(d['id'])}</code></h2><p>{d['samples']:,} samples, "
             f"{d['skipped']:,} skipped; global batch {d['global_batch']}; "
             f"<code>{_esc(d['storage'])}</code></p><div class='grid'>")
    page.add(page.chart(charts.bucket_chart(d["buckets"]) if d["buckets"] else None,
                        "no buckets"))
    page.add(page.chart(charts.aspect_chart(d["aspects"]) if d["aspects"] else None,
                        "no images"))
    page.add(page.chart(charts.size_chart(d["sizes"]) if d["sizes"] else None, "no images"))
    page.add(page.chart(charts.caption_chart(cap["chars"]) if cap["chars"] else None,
                        "no captions"))
    page.add("</div>")
    page.add(f"<p>Captions: {cap['captions']:,} for {cap['samples']:,} samples; "
             f"<b>{cap['missing']:,} without a caption</b>, {cap['multiple']:,} with several; "
             f"mean {cap['mean_chars']} characters, {cap['mean_words']} words.</p>")
    short = [b for b in d["buckets"] if b["status"] != "full"]
    if short:
        page.add(f"<p>Buckets that are not a multiple of the global batch ({d['global_batch']}"
                 "; short: fewer samples than one batch): " + ", ".join(
                     f"{_esc(b['bucket'])} {b['status']} ({b['count']} samples, "
                     f"{b['remainder']} past the last whole batch)" for b in short) + "</p>")
    if d["skip_reasons"]:
        page.add("<h3>Filtered out</h3>")
        page.add(_table(["reason", "files", "examples"], [
            [_esc(r["reason"]), f"{r['count']:,}",
             "<br>".join(f"<code>{_esc(p)}</code>" for p in r["examples"])]
            for r in d["skip_reasons"]]))


def render_html(data: Mapping[str, Any]) -> str:
    """The whole page for ``data`` (from ``collect_report``)."""
    page = _Page()
    page.add(f"<h1>{_esc(data['title'])}</h1>")
    _config_section(page, data)
    _run_section(page, data.get("run"))
    for d in data["datasets"]:
        _dataset_section(page, d)
    # data-derived strings (ids, bucket labels, paths) sit inside a <script> element: no
    # "<", ">" or "&" may appear there raw (a "</script>" or "<!--" would change the parsing)
    specs = json.dumps(page.specs, separators=(",", ":")).replace("<", "\\u003c") \
        .replace(">", "\\u003e").replace("&", "\\u0026")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_esc(data['title'])}</title><style>{_CSS}</style>"
            f"<script>{vega_bundle()}</script></head><body>{''.join(page.parts)}"
            f"<script type='application/json' id='db-specs'>{specs}</script>"
            f"<script>{_INIT}</script></body></html>")
