"""Open the HTML reports in a real headless browser (Debian's ``chromium``).

Checks that the page's script ran without a JavaScript error (it writes
``rendered`` into ``#render-status`` and ``data-render="ok"`` on <body>
only when the page matches its data, and an error handler writes the error
there instead), that the highlighted row is the violating step, and keeps a
screenshot of each report as an artifact (its path is printed; run pytest
with ``-s`` to see it, or set RESUMESPEC_ARTIFACTS=DIR to keep them there).

Chromium is required, not optional: a missing browser fails these tests
with the command that installs it (.ci/run installs it in CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from resumespec.conformance.checker_native import check_native
from resumespec.report.counterexample_story import timeline_from_counterexample
from resumespec.report.html import render_html
from resumespec.report.trace_story import timeline_from_trace
from resumespec.spec import manifest as mf
from resumespec.spec import tlc
from resumespec.spec.cli import model_run_for

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--disable-dev-shm-usage"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed: the browser test needs it "
                "(Debian/Ubuntu: apt-get install -y chromium; .ci/run installs it)")


def run_browser(args: list[str], timeout: int = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    where = os.environ.get("RESUMESPEC_ARTIFACTS")
    if where:
        path = Path(where)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("report-artifacts")


@pytest.fixture(scope="module")
def corruption_report(artifacts):
    """The HTML report of sent_tokens_corruption (one TLC run) and its violating step."""
    manifest = mf.load_manifest()
    entry = manifest.by_name("sent_tokens_corruption")
    result = tlc.check_model(model_run_for(manifest, entry), tlc.prepare_settings(workers=1, timeout_s=300))
    assert result.trace is not None
    t = timeline_from_counterexample(result.trace, title=entry.name, prop=result.property, kind=result.kind,
                                     constants=entry.constants, hint=entry.why or "", subtitle=entry.constants)
    page = artifacts / "sent_tokens_corruption.html"
    page.write_text(render_html(t))
    return page, len(result.trace.states) - 1


def check_page(page: Path, expected_step: int | None, screenshot: Path) -> str:
    dom = run_browser(["--virtual-time-budget=5000", "--dump-dom", page.as_uri()])
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    status = re.search(r'<p id="render-status">([^<]*)</p>', html)
    assert status, "the page has no render status element"
    assert status.group(1) == "rendered", f"the page script reported: {status.group(1)}"
    assert re.search(r'<body[^>]*data-render="ok"', html)
    rows = re.findall(r'<div class="step[^"]*\bhighlight\b[^"]*"[^>]*data-step="(\d+)"', html)
    if expected_step is None:
        assert rows == []
    else:
        assert rows == [str(expected_step)], rows
        # The same step is highlighted in the diagram.
        assert re.search(rf'<rect class="row[^"]*\bhighlight\b[^"]*" data-step="{expected_step}"', html)
    shot = run_browser(["--window-size=1400,1300", f"--screenshot={screenshot}", page.as_uri()])
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, "the screenshot is not a drawn page"
    print(f"\nscreenshot of {page.name}: {screenshot}")
    return html


def test_counterexample_report_renders_in_a_browser(corruption_report, artifacts):
    page, last = corruption_report
    html = check_page(page, last, artifacts / "sent_tokens_corruption.png")
    assert "HandedDataIsSource fails" in html


def test_trace_report_renders_in_a_browser(artifacts):
    path = ROOT / "conformance" / "corpus" / "sglang" / "caff70bd5" / "tp2_resume_race.jsonl"
    v = check_native([str(path)])
    t = timeline_from_trace([str(path)], v)
    page = artifacts / "tp2_resume_race.html"
    page.write_text(render_html(t))
    html = check_page(page, t.finding.step, artifacts / "tp2_resume_race.png")
    assert re.search(rf'data-step="{t.finding.step}" data-line="{v.line}"', html)


def test_a_broken_page_is_caught(artifacts, corruption_report):
    """The check can fail: a page whose highlight does not match its data says so."""
    page, last = corruption_report
    broken = artifacts / "broken.html"
    broken.write_text(page.read_text().replace(f'"highlight": {last}', f'"highlight": {last - 1}'))
    dom = run_browser(["--virtual-time-budget=5000", "--dump-dom", broken.as_uri()])
    assert 'data-render="error"' in dom.stdout
