"""``ketasim dashboard``: jobs in server-chosen workspaces, and the page in a real browser.

The browser test starts the server as a subprocess (127.0.0.1, a free port) and drives
Debian's chromium with Playwright: load the page, see a bad scenario's error line (the
command line's line), pick a rodent example, run it, watch the progress, see the figures,
download summary.csv (the numbers ``ks.run`` gives), cancel a longer run. It is skipped
only where no chromium binary exists (``apt-get install chromium``; ``.ci/run`` installs
it). ``KETASIM_SCREENSHOT=docs/dashboard.png`` saves the finished page there.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import ketasim as ks
from ketasim.cli import app
from ketasim.dashboard import jobs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "li2011_cus"  # 16 rats, one time point: a run of seconds
EXAMPLE_TEXT = (ROOT / "examples" / f"{EXAMPLE}.toml").read_text(encoding="utf-8")
BAD_TEXT = EXAMPLE_TEXT.replace('species = "rat"', 'species = "dog"')


def cli_error_line(text: str, tmp_path: Path) -> str:
    """What ``ketasim run FILE`` prints for this scenario text (exit status 2)."""
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    got = CliRunner().invoke(app, ["run", str(path)])
    assert got.exit_code == 2
    lines = [ln for ln in got.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1
    return lines[0]


# ------------------------------------------------------------------- without a browser


def test_check_gives_the_command_lines_error(tmp_path: Path) -> None:
    got = jobs.check(BAD_TEXT)
    assert not got.ok and got.scenario is None
    assert got.error == cli_error_line(BAD_TEXT, tmp_path)
    assert got.error.startswith("species:")


def test_check_bad_toml_is_one_line() -> None:
    got = jobs.check('name = "x"\nspecies = \n')
    assert got.error is not None and "\n" not in got.error
    assert got.error.startswith("scenario: not valid TOML:") and "line 2" in got.error


def test_check_caps_the_population() -> None:
    text = EXAMPLE_TEXT.replace("size = 8 ", "size = 40 ")
    assert jobs.check(text, max_subjects=80).ok  # 40 rats x 2 arms
    got = jobs.check(text, max_subjects=79)
    assert got.subjects == 80 and got.error is not None
    assert got.error.startswith("population.size: 40 gives 80 subjects in all")
    assert "--max-subjects" in got.error


def test_subject_count_of_a_crossover_counts_each_subject_once() -> None:
    sc = ks.default_scenario()
    assert sc.design.type == "crossover"
    assert jobs.subject_count(sc) == sc.population.size


@pytest.mark.parametrize("job_id", ["..", "../etc", "/etc/passwd", "a" * 31 + "/",
                                    "A" * 32, "0" * 33, "0" * 31 + ".", "", "0" * 16])
def test_store_refuses_anything_but_a_job_id(job_id: str) -> None:
    store = jobs.JobStore()
    try:
        store.jobs["0" * 32] = jobs.Job("0" * 32, store.root, False, "x", state="done")
        assert store.get(job_id) is None
        assert store.file(job_id, "summary.csv") is None
    finally:
        store.close()


def test_store_serves_only_the_fixed_names(tmp_path: Path) -> None:
    store = jobs.JobStore()
    try:
        job = jobs.Job("1" * 32, store.root / ("1" * 32), False, "x", state="done")
        job.out.mkdir(parents=True)
        for name in ("summary.csv", "manifest.json"):
            (job.out / name).write_text("x", encoding="utf-8")
        store.jobs[job.id] = job
        assert store.file(job.id, "summary.csv") == job.out / "summary.csv"
        for name in ("manifest.json", "../out/summary.csv", "subjects.parquet", "report.html"):
            assert store.file(job.id, name) is None
    finally:
        store.close()
    assert not store.root.exists()


def test_cancel_ends_the_worker_and_deletes_its_files() -> None:
    store = jobs.JobStore()
    try:
        job = store.start(jobs.examples(None)[jobs.DEFAULT_STUDY][1], study=True)
        assert job.state == "running" and job.process.is_alive()
        assert job.workspace.parent == store.root
        job.cancel()
        assert job.state == "cancelled" and not job.process.is_alive()
        assert not job.out.exists()
        assert store.file(job.id, "summary.csv") is None
    finally:
        store.close()


def test_report_figures_are_read_in_order() -> None:
    page = ('<figure><img alt="a" src="data:image/png;base64,AAA"><figcaption>first</figcaption>'
            '</figure><p>x</p><figure><img src="https://elsewhere/x.png"><figcaption>remote'
            '</figcaption></figure><figure><img src="data:image/png;base64,BBB">'
            "<figcaption>second &amp; last</figcaption></figure>")
    parser = jobs.ReportFigures()
    parser.feed(page)
    assert parser.found == [("", "data:image/png;base64,AAA", "first"),
                            ("", "data:image/png;base64,BBB", "second & last")]


def test_cli_binds_to_localhost_and_warns_for_another_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ketasim.dashboard import app as web

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(web, "serve", lambda **kw: calls.append(kw))
    quiet = CliRunner().invoke(app, ["dashboard"])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
    loud = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0", "--port", "9000"])
    assert loud.exit_code == 0
    assert loud.stderr.startswith("warning: --host 0.0.0.0: the dashboard is open")
    assert [c["host"] for c in calls] == ["127.0.0.1", "0.0.0.0"]
    assert calls[1]["port"] == 9000
    bad = CliRunner().invoke(app, ["dashboard", "--max-subjects", "0"])
    assert bad.exit_code == 2 and bad.stderr.startswith("--max-subjects: 0 is not")


# ------------------------------------------------------------------------ the browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-c", "from ketasim.cli import main; main()", "dashboard",
           "--port", str(port), "--examples", str(ROOT / "examples")]
    # NiceGUI takes a pytest variable in its environment for its own test mode
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read() if proc.stdout else ""
                    pytest.fail(f"the dashboard did not start: {out[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; "
                    ".ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True)
        yield b
        b.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _set_editor(page: object, text: str) -> None:
    content = page.locator("[data-testid=editor] .cm-content")  # type: ignore[attr-defined]
    content.click()
    page.keyboard.press("Control+A")  # type: ignore[attr-defined]
    page.keyboard.insert_text(text)  # type: ignore[attr-defined]


def test_dashboard_in_a_browser(server: str, browser: object, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    # the numbers the download must hold, simulated meanwhile in this process
    pool = ThreadPoolExecutor(1)
    expected = pool.submit(ks.run, ks.load_scenario(ROOT / "examples" / f"{EXAMPLE}.toml"))
    page = browser.new_page(viewport={"width": 1500, "height": 1000},  # type: ignore[attr-defined]
                            accept_downloads=True)
    page.set_default_timeout(20_000)
    page.goto(server)
    check = page.get_by_test_id("check")
    expect(check).to_contain_text("✓ Single 0.5 mg/kg ketamine infusion vs saline")
    expect(check).to_contain_text("100 subjects + the six-infusion course")

    # a bad scenario: the command line's one line, and no run
    _set_editor(page, BAD_TEXT)
    expect(check).to_have_text(cli_error_line(BAD_TEXT, tmp_path))
    expect(page.get_by_test_id("run")).to_be_disabled()

    # pick the example and run it
    page.get_by_test_id("example").click()
    page.get_by_role("option", name=f"{EXAMPLE}: Li 2011").click()
    expect(check).to_contain_text("✓ Li 2011")
    expect(check).to_contain_text("· rat · parallel · 16 subjects")
    page.get_by_test_id("run").click()
    progress = page.get_by_test_id("progress-text")
    expect(progress).to_contain_text("simulating subjects", timeout=60_000)
    expect(page.get_by_test_id("cancel")).to_be_enabled()
    expect(progress).to_have_text("finished", timeout=120_000)

    # the figures: the report's, drawn (a decoded image has a width)
    expect(page.get_by_test_id("result-title")).to_contain_text("Li 2011")
    figure = page.get_by_test_id("figure-0").locator("img")
    expect(figure).to_be_visible()
    page.wait_for_function("() => { const i = document.querySelector("
                           "'[data-testid=figure-0] img'); return i && i.complete && "
                           "i.naturalWidth > 100; }")
    assert page.locator("[data-testid^=figure-]").count() >= 2  # lab figures among them

    # download summary.csv: the numbers ks.run gives for this scenario
    with page.expect_download() as info:
        page.get_by_test_id("download-summary.csv").click()
    got = tmp_path / "summary.csv"
    info.value.save_as(got)
    assert info.value.suggested_filename == "summary.csv"
    want = expected.result()
    pool.shutdown()
    pd.testing.assert_frame_equal(
        pd.read_csv(got), pd.read_csv(io.StringIO(want.summary.to_csv(index=False))))

    # files by job id and fixed name only
    href = page.get_by_test_id("download-summary.csv").get_attribute("href")
    assert href is not None and href.startswith("/jobs/")
    job_id = href.split("/")[2]
    assert _status(server + href) == 200
    assert _status(f"{server}/jobs/{job_id}/download/manifest.json") == 404
    assert _status(f"{server}/jobs/{job_id}/report") == 200
    for bad in ("..%2F..%2Fetc", "..", "%2Fetc%2Fpasswd", job_id.upper(), "0" * 32):
        assert _status(f"{server}/jobs/{bad}/download/summary.csv") == 404
    assert _status(f"{server}/jobs/{job_id}/download/..%2Fout%2Fsummary.csv") == 404

    if os.environ.get("KETASIM_SCREENSHOT"):
        page.screenshot(path=os.environ["KETASIM_SCREENSHOT"], full_page=False)

    # a longer run can be cancelled
    page.get_by_test_id("example").click()
    page.get_by_role("option", name="Default study").click()
    expect(check).to_contain_text("✓ Single 0.5 mg/kg")
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("cancel")).to_be_enabled()
    page.get_by_test_id("cancel").click()
    expect(progress).to_have_text("cancelled")
    expect(page.get_by_test_id("run")).to_be_enabled()
    page.close()


def test_png_width_reads_the_header() -> None:
    import base64

    from matplotlib.figure import Figure

    from ketasim.dashboard.app import png_width

    buf = io.BytesIO()
    Figure(figsize=(2.0, 1.0)).savefig(buf, format="png", dpi=50)
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    assert png_width(src) == 100
    assert png_width("data:image/jpeg;base64,/9j/4AAQ") is None
    assert png_width("data:image/png;base64,AAAA") is None
