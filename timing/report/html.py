"""The report page: one self-contained HTML file (inline CSS and SVG, nothing fetched)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date

import pandas as pd

from timing.report.context import Section

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d8dee4; --band: #f6f8fa; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 16px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 32px 24px 64px; }
header h1 { font-size: 28px; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
nav { margin: 20px 0 8px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px; margin: 20px 0; }
.figures div { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.figures b { display: block; font-size: 22px; }
.figures span { color: var(--muted); font-size: 13px; }
section { border-top: 1px solid var(--line); padding-top: 8px; margin-top: 28px; }
h2 { font-size: 21px; margin: 12px 0 8px; }
figure { margin: 16px 0; }
svg.chart { display: block; width: 100%; height: auto; max-width: 100%; }
figcaption { color: var(--muted); font-size: 14px; margin-top: 4px; }
.missing { background: #fff8e1; border-left: 4px solid #E69F00; padding: 8px 12px; }
table { border-collapse: collapse; font-size: 14px; margin: 12px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: var(--band); font-weight: 600; }
td.words, th.words { text-align: left; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
@media print { main { max-width: none; padding: 0; } section { break-inside: avoid-page; } }
""".strip()


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def paragraphs(*texts: str) -> str:
    """Plain sentences to HTML paragraphs (escaped)."""
    return "".join(f"<p>{esc(t)}</p>" for t in texts if t)


def table(df: pd.DataFrame, words: Sequence[str] = ()) -> str:
    """A small table; cells are shown as given (format them first), ``words`` columns left-aligned."""
    head = "".join(f'<th class="words">{esc(c)}</th>' if c in words else f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = "".join(
            f'<td class="words">{esc(v)}</td>' if c in words else f"<td>{esc(v)}</td>"
            for c, v in zip(df.columns, rec, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_section(s: Section) -> str:
    parts = [f'<section id="{esc(s.key)}">', f"<h2>{esc(s.title)}</h2>"]
    if s.missing:
        parts.append(f'<p class="missing">{esc(s.missing)}</p>')
    parts.append(s.text)
    for chart in s.charts:
        parts.append(f"<figure>\n{chart.svg}<figcaption>{esc(chart.caption)}</figcaption></figure>")
    parts.extend(s.tables)
    parts.append("</section>")
    return "\n".join(parts)


def page(title: str, subtitle: str, sections: Sequence[Section], as_of: date, footer: str) -> str:
    figures = "".join(f"<div><b>{esc(v)}</b><span>{esc(k)}</span></div>"
                      for s in sections for k, v in s.headline)
    nav = "".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(render_section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="report-as-of" content="{as_of.isoformat()}">\n'
        f"<title>{esc(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>\n"
        f"<nav>{nav}</nav>\n"
        f'<div class="figures">{figures}</div>\n'
        f"{body}\n"
        f"<footer>{esc(footer)}</footer>\n"
        "</main>\n</body>\n</html>\n"
    )
