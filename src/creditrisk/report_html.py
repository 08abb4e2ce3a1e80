"""Small helpers for the self-contained HTML pages creditrisk writes (the data profile,
the evaluation report of a training run): escaping, a table from rows, a section, an
embedded PNG, a JSON payload for tools, and the page around them.

Every text that comes from data goes through :func:`escape`; a page loads nothing from
anywhere (images are embedded as base64, the style is inline).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

#: The style every page shares.
BASE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:1em 2em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.6em 0}
.muted{color:#666;font-size:.9em}.warn{color:#a33}
nav a{margin-right:1em}ul.notes li{margin:.3em 0}
"""


def escape(value: Any) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], *, left: int = 1) -> str:
    """A table; the first ``left`` columns are left-aligned (labels), the rest right."""
    def cell(tag: str, i: int, value: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{escape(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(heading: str, body: str = "", *, anchor: str | None = None,
            level: int = 2) -> str:
    """A heading (with ``anchor`` as its id, for a page's navigation) and its body."""
    ident = f' id="{escape(anchor)}"' if anchor else ""
    return f"<h{level}{ident}>{escape(heading)}</h{level}>{body}"


def nav(links: Iterable[tuple[str, str]]) -> str:
    """Links to a page's sections: (anchor, text) pairs."""
    return "<nav>" + " ".join(f'<a href="#{escape(a)}">{escape(t)}</a>'
                              for a, t in links) + "</nav>"


def image(png: bytes | str, alt: str) -> str:
    """An embedded PNG: its bytes, or their base64 text."""
    b64 = png if isinstance(png, str) else base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{b64}">'


def figure(png: bytes | str, caption: str) -> str:
    """An embedded PNG with a caption (also its alternative text)."""
    return f"<figure>{image(png, caption)}<figcaption>{escape(caption)}</figcaption></figure>"


def json_script(element_id: str, payload: str) -> str:
    """JSON text in a ``<script type="application/json">`` element, for tools; no raw <,
    > or & inside the element, whatever the data holds."""
    safe = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{escape(element_id)}">{safe}</script>'


def page(title: str, parts: Iterable[str], *, css: str = BASE_CSS, tail: str = "") -> str:
    """A whole HTML document: ``parts`` one per line in the body, ``tail`` (e.g. a
    :func:`json_script`) after them."""
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{css}</style></head><body>\n{body}\n"
        f"{tail}\n</body></html>\n"
    )
