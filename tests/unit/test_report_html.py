"""The shared HTML helpers (creditrisk.report_html) and the evaluate step's report built
with them."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from creditrisk import report_html as rh
from creditrisk.rundir import RunDir

pytestmark = pytest.mark.unit

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


class _Balance(HTMLParser):
    """Counts open elements; a well-formed page closes what it opens."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()


def _well_formed(page: str) -> None:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.stack == []


def test_table_escapes_and_aligns() -> None:
    out = rh.table(["name", "n"], [["<b>&", 3]], left=1)
    assert out == ('<table><thead><tr><th class="l">name</th><th>n</th></tr></thead>'
                   '<tbody><tr><td class="l">&lt;b&gt;&amp;</td><td>3</td></tr></tbody></table>')


def test_section_nav_image_figure_and_json() -> None:
    assert rh.section("A <b>", "<p>x</p>", anchor="a") == '<h2 id="a">A &lt;b&gt;</h2><p>x</p>'
    assert rh.section("Sub", level=3) == "<h3>Sub</h3>"
    assert rh.nav([("a", "A & B")]) == '<nav><a href="#a">A &amp; B</a></nav>'
    src = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    assert rh.image(PNG, 'x"y') == f'<img alt="x&quot;y" src="{src}">'
    assert rh.image(base64.b64encode(PNG).decode(), "x") == f'<img alt="x" src="{src}">'
    assert rh.figure(PNG, "roc").endswith("<figcaption>roc</figcaption></figure>")
    script = rh.json_script("s", json.dumps({"t": "</script><b>&"}))
    assert "</script><b>" not in script.removesuffix("</script>")
    body = re.search(r">(.*)</script>$", script)
    assert body and json.loads(body.group(1)) == {"t": "</script><b>&"}


def test_page_is_one_well_formed_document() -> None:
    page = rh.page("T <1>", [rh.section("S", rh.table(["a"], [[1]])), "<p>end</p>"],
                   tail=rh.json_script("data", "{}"))
    assert page.startswith("<!DOCTYPE html>") and "<title>T &lt;1&gt;</title>" in page
    _well_formed(page)


def test_the_evaluation_report(tmp_path: Path) -> None:
    from creditrisk.stages import _write_html_report

    run = RunDir(tmp_path / "run")
    run.plots.mkdir(parents=True)
    (run.plots / "roc.png").write_bytes(PNG)
    (run.plots / "calibration.png").write_bytes(PNG)
    run.card.write_text("# Card\n<script>alert(1)</script>\n")
    out = tmp_path / "sub" / "report.html"
    _write_html_report(out, run, {"test_roc_auc": 0.78123456, "model": "lgbm<x>"})
    page = out.read_text()
    _well_formed(page)
    assert "<h1>Evaluation on the held-out split</h1>" in page
    assert "<td>0.7812</td>" in page and "lgbm&lt;x&gt;" in page
    assert re.findall(r"<figcaption>(\w+)</figcaption>", page) == ["calibration", "roc"]
    assert page.count('src="data:image/png;base64,') == 2
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
