"""Building blocks of the self-contained HTML pages: escaping, value formatting, the document shell,
embedded images, cards, tables and details, and the stylesheet of those blocks."""
from __future__ import annotations

import html
import math
from collections.abc import Iterable

DASH = "&ndash;"


def esc(value: object, quote: bool = True) -> str:
    """`value` as text safe inside HTML (and, with `quote`, inside an attribute)."""
    return html.escape(str(value), quote=quote)


def fmt(value) -> str:
    """A metric or fact: a dash for None, four decimals for a float, else the escaped text."""
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:.4f}"
    return esc(value)


def num(value: float | None, digits: int = 3) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return DASH if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def cell(value) -> str:
    """A table cell's text: containers as their escaped repr, anything else as fmt(value)."""
    return esc(value) if isinstance(value, (dict, list, tuple)) else fmt(value)


def document(title: str, css: str, body: str) -> str:
    """A whole HTML document with its stylesheet inline; `body` is markup."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{css}</style></head>\n"
            f"<body>{body}</body></html>\n")


def img(data: str | None, alt: str, plot_id: str = "") -> str:
    """An image of base64 PNG `data` (as the charts return it) embedded in the page; "" for None."""
    if data is None:
        return ""
    ident = f' id="{esc(plot_id)}"' if plot_id else ""
    return f'<img class="plot"{ident} alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def plural(n: int, noun: str = "day") -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def day_span(days: list | None) -> str:
    """The first and last of `days` and how many there are (a dash for none)."""
    days = [str(d) for d in days or []]
    if len(days) <= 1:
        return esc(days[0]) if days else DASH
    return f"{esc(days[0])} &rarr; {esc(days[-1])} ({len(days)} days)"


def list_items(texts) -> str:
    return "".join(f"<li>{esc(t)}</li>" for t in texts)


def header(title: str, subtitle: str) -> str:
    """The page's heading; both are markup."""
    return f'<header><h1>{title}</h1><p class="sub">{subtitle}</p></header>'


def section(ident: str, heading: str, body: str, caption: str = "", css: str = "") -> str:
    """A titled section of the page; `body` and `caption` are markup."""
    klass = f' class="{css}"' if css else ""
    caption = f'<p class="caption">{caption}</p>' if caption else ""
    return f'<section id="{ident}"{klass}><h2>{esc(heading)}</h2>{caption}{body}</section>'


def empty(text: str, tone: str = "") -> str:
    """The note standing in for something the page has nothing to show of."""
    return f'<p class="empty{" " + tone if tone else ""}">{text}</p>'


def chips(texts) -> str:
    items = "".join(f'<li class="chip">{esc(t)}</li>' for t in texts)
    return f'<ul class="chips">{items}</ul>'


def badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{esc(text)}</span>'


def card(label: str, value: str, detail: str = "", tone: str = "") -> str:
    """A headline figure; `label`, `value` and `detail` are markup."""
    return (f'<div class="card {tone}"><div class="label">{label}</div>'
            f'<div class="value">{value}</div><div class="detail">{detail}</div></div>')


def details(summary: str, body: str, open_: bool = False) -> str:
    return f'<details{" open" if open_ else ""}><summary>{esc(summary)}</summary>{body}</details>'


def pairs_table(pairs) -> str:
    """A two-column table of (label, markup) pairs."""
    rows = "".join(f"<tr><td>{esc(label)}</td><td>{text}</td></tr>" for label, text in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def kv_table(mapping: dict) -> str:
    return pairs_table((k, cell(v)) for k, v in mapping.items())


def metric_table(challenger: dict, production: dict, metrics: Iterable[str],
                 better: dict[str, int] | None = None) -> str:
    """Each of `metrics` for the challenger and production models; with `better`, a column of their
    difference, marked good or bad by its sign (+1: higher is better, -1: lower is, 0: not compared)."""
    rows = []
    for metric in metrics:
        ch, pr = challenger.get(metric), production.get(metric)
        delta, tone, direction = DASH, "", (better or {}).get(metric)
        if isinstance(ch, (int, float)) and isinstance(pr, (int, float)) and direction:
            diff = ch - pr
            delta = f"{diff:+.4f}"
            tone = "good" if diff * direction > 0 else "bad" if diff * direction < 0 else ""
        extra = f'<td class="{tone}">{delta}</td>' if better is not None else ""
        rows.append(f"<tr><td>{esc(metric)}</td><td>{fmt(ch)}</td><td>{fmt(pr)}</td>{extra}</tr>")
    head = "<th>metric</th><th>challenger</th><th>production</th>"
    head += "<th>&Delta;</th>" if better is not None else ""
    return f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def records_table(records: list) -> str:
    """A table of the dicts among `records`, a column per key in order of first appearance."""
    dicts = [r for r in records if isinstance(r, dict)]
    keys: list[str] = []
    for record in dicts:
        keys.extend(k for k in record if k not in keys)
    head = "".join(f"<th>{esc(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(k))}</td>" for k in keys) + "</tr>" for r in dicts)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def data_table(columns: list[tuple[str, str]], rows: list[list[str]],
               row_classes: list[str] | None = None, notes: list[str] | None = None) -> str:
    """A scrollable table of pre-escaped cells; each column is (header, css class of its cells).
    With `notes` (markup, one per row), a row's note sits on a row of its own under it, across the
    whole table's width (for long text such as a reason); an empty note adds no row."""
    head = "".join(f'<th class="{css}">{esc(label)}</th>' if css else f"<th>{esc(label)}</th>"
                   for label, css in columns)
    body = []
    for i, row in enumerate(rows):
        klass = " ".join(c for c in ((row_classes[i] if row_classes else ""),
                                     "has-note" if notes and notes[i] else "") if c)
        css = f' class="{klass}"' if klass else ""
        cells = "".join(f'<td class="{c}">{text}</td>' if c else f"<td>{text}</td>"
                        for (_, c), text in zip(columns, row))
        body.append(f"<tr{css}>{cells}</tr>")
        if notes and notes[i]:
            extra = f" {row_classes[i]}" if row_classes and row_classes[i] else ""
            body.append(f'<tr class="note{extra}"><td colspan="{len(columns)}">{notes[i]}</td></tr>')
    return (f'<div class="scroll"><table class="data"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def stylesheet() -> str:
    """The stylesheet every page starts from (each adds the rules of its own blocks after it)."""
    return CSS


# The look of the blocks above: page, header, sections, cards, chips, tables, badges, details.
CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:#1d2430;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
header h1{margin:0;font-size:26px;font-weight:650}
header .sub{margin:4px 0 18px;color:#5b6573}
h2{font-size:19px;margin:0 0 6px}
h3{font-size:15px;margin:16px 0 6px}
section{background:#fff;border:1px solid #e1e5eb;border-radius:10px;padding:18px 22px;margin:0 0 18px;
 box-shadow:0 1px 2px rgba(20,30,50,.04)}
section.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;
 background:none;border:0;box-shadow:none;padding:0}
.card{background:#fff;border:1px solid #e1e5eb;border-left:5px solid #5b7bb4;border-radius:10px;
 padding:12px 14px}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#6b7583}
.card .value{font-size:26px;font-weight:650;margin:2px 0;overflow-wrap:anywhere}
.card .value code{font-size:12px}
.card .detail{font-size:12.5px;color:#5b6573}
.card.good{border-left-color:#2a9d3f}.card.bad{border-left-color:#d62728}.card.warn{border-left-color:#e8a400}
.notice{background:#fff8e6;border-color:#f0d48a}
.caption{color:#5b6573;margin:0 0 10px;max-width:900px}
img.plot{display:block;max-width:100%;height:auto;margin:6px auto}
.chips{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:6px 14px}
.chip{background:#fff;border:1px solid #e0b84f;border-radius:12px;padding:1px 10px;
 font-variant-numeric:tabular-nums}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid #e8ebef;text-align:right;vertical-align:top;white-space:nowrap}
table.data th,table.data td{text-align:left}
table.data th.num,table.data td.num{text-align:right}
td.wrap{white-space:normal;min-width:14em}td.small{font-size:12.5px}
tr.has-note td{border-bottom:0;padding-bottom:1px}
tr.note td{white-space:normal;text-align:left;color:#3d4653;font-size:13px;padding:0 10px 8px 22px}
.scroll{overflow-x:auto}.nowrap{white-space:nowrap}
th{font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#6b7583;background:#f7f8fa}
td:first-child,th:first-child{text-align:left}
table.data{width:100%}
table.kv td:first-child{color:#5b6573}
td.good{color:#1e7d32;font-weight:600}td.bad{color:#c62828;font-weight:600}
.badge{display:inline-block;border-radius:10px;padding:0 10px;font-size:13px;color:#fff;vertical-align:2px}
.badge.good{background:#2a9d3f}.badge.bad{background:#d62728}
.two-col{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.2fr);gap:28px}
.empty{color:#6b7583;font-style:italic}.empty.good{color:#1e7d32}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
ul.reasons{margin:4px 0;padding-left:20px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-1px;margin-right:4px}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
@media (max-width:800px){.two-col{grid-template-columns:1fr}}
"""
