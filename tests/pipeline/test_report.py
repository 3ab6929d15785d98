import re

import numpy as np

from pipeline import report


def evaluation(**overrides) -> dict:
    record = {
        "challenger_id": "cand<1>",
        "production_version": "20130109-abc",
        "holdout_days": ["2013-01-08", "2013-01-09"],
        "challenger": {"roc_auc": 0.712345, "average_precision": 0.4, "log_loss": 0.5, "brier": 0.2,
                       "rows": 1234, "positive_rate": 0.25},
        "production": {"roc_auc": 0.7, "average_precision": 0.39, "log_loss": 0.51, "brier": 0.21,
                       "rows": 1234, "positive_rate": 0.25},
        "decision": {"blessed": True, "reasons": ["roc_auc 0.7123 clears the floor >= 0.6",
                                                  "note: <script>alert(1)</script> & more"]},
    }
    record.update(overrides)
    return record


def test_html_escapes_every_text_from_the_record():
    html = report.evaluation_html("Model <b>2013-01-10</b> & co", evaluation(), [])
    assert "<script>" not in html and "<b>2013" not in html and "cand<1>" not in html
    assert "<title>Model &lt;b&gt;2013-01-10&lt;/b&gt; &amp; co</title>" in html
    assert "<li>note: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</li>" in html
    assert "<code>cand&lt;1&gt;</code>" in html


def test_html_contains_metrics_verdict_and_context():
    html = report.evaluation_html("t", evaluation(), ["AAAA"])
    assert '<tr><td>roc_auc</td><td>0.7123</td><td>0.7000</td><td class="good">+0.0123</td></tr>' in html
    assert '<tr><td>log_loss</td><td>0.5000</td><td>0.5100</td><td class="good">-0.0100</td></tr>' in html
    assert '<tr><td>rows</td><td>1234</td><td>1234</td><td class="">&ndash;</td></tr>' in html
    assert '<div class="card good"><div class="label">Gate</div><div class="value">BLESSED</div>' in html
    assert "<h2>Gate: BLESSED</h2>" in html and "REJECTED" not in html
    assert "<li>roc_auc 0.7123 clears the floor &gt;= 0.6</li>" in html
    assert "2013-01-08 &rarr; 2013-01-09 (2 days)" in html and "20130109-abc" in html and "1234 holdout" in html
    assert re.search(r'<img [^>]*src="data:image/png;base64,AAAA">', html)


def test_html_rejected_without_production():
    record = evaluation(production=None, decision={"blessed": False, "reasons": ["roc_auc fails"]})
    record["challenger"]["roc_auc"] = None
    html = report.evaluation_html("t", record, [])
    assert '<div class="card bad"><div class="label">Gate</div><div class="value">REJECTED</div>' in html
    assert "<h2>Gate: REJECTED</h2>" in html and "BLESSED" not in html
    assert "<th>&Delta;</th>" not in html  # no production model: nothing to take a difference from
    assert "<tr><td>roc_auc</td><td>&ndash;</td><td>&ndash;</td></tr>" in html
    assert "<tr><td>brier</td><td>0.2000</td><td>&ndash;</td></tr>" in html


def test_render_embeds_the_plots_of_the_holdout():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=200)
    curves = {"challenger": np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1), "production": rng.random(200)}
    html = report.render("t", evaluation(importance={"x": 0.1, "c": 0.02}), labels, curves, "binary")
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{100,}">', html)) == 2
    assert '<tr><td>roc_auc</td><td>0.7123</td><td>0.7000</td><td class="good">+0.0123</td></tr>' in html


def test_render_without_holdout_rows_has_no_plots():
    html = report.render("t", evaluation(importance={"x": 0.1}), np.array([]), {}, "binary")
    assert "<img" not in html and "<h2>Gate: BLESSED</h2>" in html
