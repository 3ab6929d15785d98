import re

from pipeline import pages


def test_values_are_formatted_and_escaped():
    assert pages.fmt(None) == "&ndash;" and pages.fmt(0.123456) == "0.1235" and pages.fmt(12) == "12"
    assert pages.fmt("<b>") == "&lt;b&gt;"
    assert pages.num(float("nan")) == "&ndash;" and pages.num(1.23456) == "1.235"
    assert pages.pct(None) == "&ndash;" and pages.pct(0.1234) == "12.3%"
    assert pages.cell({"a": "<x>"}) == "{&#x27;a&#x27;: &#x27;&lt;x&gt;&#x27;}"
    assert pages.day_span([]) == "&ndash;" and pages.day_span(["d<1>"]) == "d&lt;1&gt;"
    assert pages.day_span(["a", "b", "c"]) == "a &rarr; c (3 days)"


def test_metric_table_marks_the_better_side():
    table = pages.metric_table({"auc": 0.7, "loss": 0.5, "rows": 10}, {"auc": 0.6, "loss": 0.4, "rows": 10},
                               ["auc", "loss", "rows"], better={"auc": 1, "loss": -1, "rows": 0})
    assert '<tr><td>auc</td><td>0.7000</td><td>0.6000</td><td class="good">+0.1000</td></tr>' in table
    assert '<td class="bad">+0.1000</td>' in table and '<td class="">&ndash;</td>' in table
    plain = pages.metric_table({"auc": 0.7}, {}, ["auc"])
    assert "<tr><td>auc</td><td>0.7000</td><td>&ndash;</td></tr>" in plain and "&Delta;" not in plain


def test_blocks_escape_their_text():
    assert pages.img(None, "x") == ""
    assert pages.img("AAAA", 'a "b"', "plot-x") == ('<img class="plot" id="plot-x" alt="a &quot;b&quot;" '
                                                   'src="data:image/png;base64,AAAA">')
    table = pages.data_table([("a<b", ""), ("n", "num")], [["x", "1"]], ["outside"])
    assert "<th>a&lt;b</th>" in table and '<tr class="outside"><td>x</td><td class="num">1</td></tr>' in table
    assert pages.records_table([{"k": "<v>"}, "skipped"]).count("<tr>") == 2
    assert "&lt;script&gt;" in pages.details("<script>", "")
    page = pages.document("<t>", "p{}", "<p>x</p>")
    assert re.search(r"<title>&lt;t&gt;</title><style>p\{\}</style>", page) and "<body><p>x</p></body>" in page
