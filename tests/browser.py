"""Headless Chromium for the tests: find it on PATH and take a full-page screenshot of a local file."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "no chromium on PATH: run scripts/install-browser.sh"


def find_chromium() -> str | None:
    """Path of the first Chromium-like browser on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1280,
               height: int = 3000, timeout: float = 90.0) -> Path:
    """Render `html_path` in headless Chromium at `width` x `height` and save the view as PNG."""
    browser = find_chromium()
    if browser is None:
        raise RuntimeError(INSTALL_HINT)
    html_path, png_path = Path(html_path).resolve(), Path(png_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"no page to screenshot at {html_path}")
    png_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                   f"--user-data-dir={profile}", f"--screenshot={png_path}",
                   f"--window-size={width},{height}", html_path.as_uri()]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, text=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"chromium took more than {timeout:.0f}s to screenshot {html_path}") from None
    if proc.returncode != 0 or not png_path.is_file():
        raise RuntimeError(f"chromium exited with {proc.returncode} and wrote no screenshot "
                           f"{png_path}:\n{output[-2000:]}")
    return png_path
