"""The HTML reports as a person sees them: rendered by headless Chromium, the screenshot must show
the embedded plots (a page whose images are broken must fail the same checks)."""
import re
from pathlib import Path

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from pipeline import charts, dashboard, report
from tests.browser import INSTALL_HINT, find_chromium, screenshot
from tests.pipeline import test_dashboard as records

_IMAGE_DATA = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def _require_chromium() -> None:
    """Fail (never skip) when there is no browser, so a missing install cannot pass unnoticed."""
    if find_chromium() is None:
        pytest.fail(f"{INSTALL_HINT} (these tests need a headless browser and are never skipped)")


def _shot(tmp_path: Path, name: str, page: str) -> np.ndarray:
    html_path = tmp_path / f"{name}.html"
    html_path.write_text(page, encoding="utf-8")
    png_path = screenshot(html_path, tmp_path / f"{name}.png", width=1280, height=3000)
    assert png_path.stat().st_size > 10_000
    image = matplotlib.image.imread(png_path)
    assert image.shape[:2] == (3000, 1280)
    return image[..., :3]


def _broken(page: str) -> str:
    """The same page with every embedded image replaced by undecodable data."""
    return _IMAGE_DATA.sub("data:image/png;base64,AAAA", page)


def _pixels_near(image: np.ndarray, color: str, tolerance: float = 0.05) -> int:
    target = np.array(matplotlib.colors.to_rgb(color))
    return int((np.abs(image - target).max(axis=-1) <= tolerance).sum())


def _coloured_bands(image: np.ndarray, band: int = 300, min_fraction: float = 0.02) -> int:
    """How many horizontal bands of the screenshot have a noticeable share of saturated pixels."""
    saturated = (image.max(axis=-1) - image.min(axis=-1)) > 0.25
    return sum(saturated[i:i + band].mean() >= min_fraction for i in range(0, len(saturated), band))


def _dashboard_problems(image: np.ndarray) -> list[str]:
    problems = []
    ink = (image.min(axis=-1) < 0.85).mean()
    if ink < 0.04:
        problems.append(f"only {ink:.1%} of the page is drawn on")
    if _coloured_bands(image) < 3:
        problems.append(f"only {_coloured_bands(image)} bands of the page are coloured")
    signatures = {
        "performance plot (version strip)": charts.VERSION_COLORS[0],
        "drift heatmap (PSI above 4x the threshold)": charts.PSI_COLORS[-1],
        "importance bars": charts.IMPORTANCE_COLOR,
    }
    for plot, color in signatures.items():
        count = _pixels_near(image, color)
        if count < 2000:
            problems.append(f"{plot}: {count} pixels of {color}")
    return problems


def _dashboard_page() -> str:
    return dashboard.render(records.START, records.END, records.monitoring_records(), records.alias_events(),
                            records.current_model(), records.MISSING, "2026-11-27T10:00:00+00:00", problem="binary")


def test_dashboard_screenshot_shows_the_plots(tmp_path):
    _require_chromium()
    page = _dashboard_page()
    assert len(_IMAGE_DATA.findall(page)) == 3
    assert _dashboard_problems(_shot(tmp_path, "dashboard", page)) == []


def test_dashboard_check_fails_on_broken_images(tmp_path):
    _require_chromium()
    problems = _dashboard_problems(_shot(tmp_path, "broken", _broken(_dashboard_page())))
    assert len(problems) >= 3, problems


def _evaluation_page() -> str:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 600)
    challenger = np.clip(0.35 * labels + 0.65 * rng.random(600), 0, 1)
    production = np.clip(0.2 * labels + 0.8 * rng.random(600), 0, 1)
    evaluation = {"challenger_id": "cand-1", "production_version": "20131101-ab12cd34ef",
                  "holdout_days": ["2013-11-02"],
                  "challenger": {"roc_auc": 0.7, "average_precision": 0.5, "log_loss": 0.5, "brier": 0.2,
                                 "rows": 600, "positive_rate": 0.5},
                  "production": None, "decision": {"blessed": True, "reasons": ["first model"]},
                  "importance": {"dep_hour": 0.05, "carrier": 0.03, "origin": 0.01, "distance": 0.004}}
    return report.render("Model 2013-11-02", evaluation, labels, {"challenger": challenger, "production": production},
                         "binary")


def _evaluation_problems(image: np.ndarray) -> list[str]:
    """What the screenshot lacks of the holdout and importance plots drawn in the pages' shared
    colours (those of the monitoring page), or shows of matplotlib's default ones."""
    problems = []
    signatures = {
        "challenger curves": (charts.MODEL_COLORS["challenger"], 500),
        "production curves": (charts.MODEL_COLORS["production"], 300),
        "importance bars": (charts.IMPORTANCE_COLOR, 3000),
    }
    for plot, (color, least) in signatures.items():
        count = _pixels_near(image, color)
        if count < least:
            problems.append(f"{plot}: {count} pixels of {color}")
    default = _pixels_near(image, "C0") + _pixels_near(image, "C1")
    if default > 100:
        problems.append(f"{default} pixels of matplotlib's default colours")
    return problems


def test_evaluation_report_screenshot_shows_the_plots(tmp_path):
    _require_chromium()
    page = _evaluation_page()
    assert _evaluation_problems(_shot(tmp_path, "evaluation", page)) == []
    assert len(_evaluation_problems(_shot(tmp_path, "evaluation-broken", _broken(page)))) == 3
