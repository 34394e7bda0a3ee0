"""The dashboard pages on a real server: auth, escaping, and rendering in headless Chromium.

The browser test needs Debian's ``chromium``: ``make test`` (and so ``.ci/run``) installs it with
``.ci/browser`` where it can. Without it the test fails and says so, unless
``AUTOLR_SKIP_BROWSER=1`` is set, which skips it with that reason.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from ship_helpers import ADMIN_KEY, create_job

from autolr.server.models import JobDetail
from autolr.server.pages import job_body
from autolr.server.testing import ServerProcess

SKIP_BROWSER_ENV = "AUTOLR_SKIP_BROWSER"


class Tags(HTMLParser):
    """Every start tag of a page with its attributes (what the browser's DOM holds)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def find(self, tag: str, css_class: str | None = None) -> list[dict[str, str]]:
        return [
            attrs
            for t, attrs in self.tags
            if t == tag and (css_class is None or css_class in attrs.get("class", "").split())
        ]


def tags(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    return parser


def get(server: ServerProcess, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(server.url + path, timeout=60, **kwargs)


# --------------------------------------------------------------------------- auth
def browser(server: ServerProcess) -> httpx.Client:
    """A client that keeps cookies and follows redirects, as a browser does."""
    return httpx.Client(base_url=server.url, timeout=60, follow_redirects=True)


def test_job_list_needs_the_admin_key(
    live_server: ServerProcess, finished_job: dict[str, Any], running_job: dict[str, Any]
) -> None:
    refused = get(live_server, "/dashboard")
    assert refused.status_code == 401 and "admin key" in refused.text
    [form] = tags(refused.text).find("form")
    assert form["method"] == "post" and form["action"] == "/dashboard/login"
    assert tags(refused.text).find("input")[0]["name"] == "key"  # a form to enter it
    assert get(live_server, "/dashboard", params={"key": "wrong"}).status_code == 401
    for how in (
        {"headers": {"X-Admin-Key": ADMIN_KEY}},
        {"headers": {"Authorization": f"Bearer {ADMIN_KEY}"}},
    ):
        page = get(live_server, "/dashboard", **how)
        assert page.status_code == 200
        assert finished_job["job_id"] in page.text and running_job["job_id"] in page.text
    links = [a["href"] for a in tags(page.text).find("a") if "/dashboard/jobs/" in a["href"]]
    assert len(links) >= 2
    assert all(ADMIN_KEY not in link and "key=" not in link for link in links)


def test_login_sets_an_httponly_cookie_and_no_link_carries_a_credential(
    live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    with browser(live_server) as client:
        wrong = client.post("/dashboard/login", data={"key": "wrong"})
        assert wrong.status_code == 401 and "Wrong key" in wrong.text
        answer = client.post("/dashboard/login", data={"key": ADMIN_KEY}, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
        page = client.get("/dashboard")
        assert page.status_code == 200 and ADMIN_KEY not in page.text
        [link] = [
            a["href"] for a in tags(page.text).find("a") if finished_job["job_id"] in a["href"]
        ]
        assert link == f"/dashboard/jobs/{finished_job['job_id']}"  # no credential in it
        assert client.get(link).status_code == 200  # the admin cookie opens every job
        assert client.post("/dashboard/logout").status_code == 401  # back to the login form


def test_job_list_refreshes_itself_and_shows_names(live_server: ServerProcess) -> None:
    named = create_job(live_server, name="resnet <b>sweep</b>")
    page = get(live_server, "/dashboard", headers={"X-Admin-Key": ADMIN_KEY})
    assert tags(page.text).find("meta", None) and 'http-equiv="refresh"' in page.text
    assert "resnet &lt;b&gt;sweep&lt;/b&gt;" in page.text and "<b>sweep" not in page.text
    assert named["job_id"] in page.text


def test_an_old_link_with_a_credential_moves_it_into_a_cookie(
    live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    path = f"/dashboard/jobs/{finished_job['job_id']}"
    for query in ({"token": finished_job["token"]}, {"key": ADMIN_KEY}):
        with browser(live_server) as client:
            first = client.get(path, params=query, follow_redirects=False)
            assert first.status_code == 303 and first.headers["location"] == path
            assert "httponly" in first.headers["set-cookie"].lower()
            page = client.get(path)
            assert page.status_code == 200 and finished_job["job_id"] in page.text
    listing = get(live_server, "/dashboard", params={"key": ADMIN_KEY})
    assert listing.status_code == 303 and listing.headers["location"] == "/dashboard"


def test_job_page_needs_the_token_or_the_admin_key(
    live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    path = f"/dashboard/jobs/{finished_job['job_id']}"
    asked = get(live_server, path)
    assert asked.status_code == 401 and tags(asked.text).find("input")[0]["name"] == "token"
    assert tags(asked.text).find("form")[0]["action"] == f"{path}/login"
    assert get(live_server, path, params={"token": "not-the-token"}).status_code == 404
    assert get(live_server, "/dashboard/jobs/nope", params={"key": ADMIN_KEY}).status_code == 404
    with browser(live_server) as client:
        assert client.post(f"{path}/login", data={"token": "not-the-token"}).status_code == 404
        assert (
            client.post(f"{path}/login", data={"token": finished_job["token"]}).status_code == 200
        )
        other = client.get(f"/dashboard/jobs/{'0' * 32}")
        assert other.status_code == 401  # the token cookie belongs to its own job's pages
    for client_kwargs in (
        {"headers": {"Authorization": f"Bearer {finished_job['token']}"}},
        {"headers": {"X-Admin-Key": ADMIN_KEY}},
    ):
        page = get(live_server, path, **client_kwargs)
        assert page.status_code == 200, client_kwargs
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src" not in page.headers["content-security-policy"]  # no script at all
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"


def test_job_page_shows_every_chart(
    live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    page = get(
        live_server, f"/dashboard/jobs/{finished_job['job_id']}", headers=_auth(finished_job)
    )
    detail = _detail(live_server, finished_job)
    found = tags(page.text)
    assert len(found.find("svg", "probe-chart")) == len(detail["stages"]) >= 3
    assert found.find("polyline", "lr")[0]["points"]
    assert found.find("path", "train-loss")[0]["d"]
    assert found.find("path", "gp-mean")  # at least one stage had 3 healthy probes
    for kind in ("warmup", "probe", "train", "anneal"):
        assert found.find("rect", kind), kind
    assert 'http-equiv="refresh"' not in page.text  # finished: nothing to refresh


def test_a_running_job_page_refreshes_itself(
    live_server: ServerProcess, running_job: dict[str, Any]
) -> None:
    page = get(live_server, f"/dashboard/jobs/{running_job['job_id']}", headers=_auth(running_job))
    assert page.status_code == 200 and 'http-equiv="refresh"' in page.text
    assert "running" in page.text


def test_user_controlled_text_is_escaped_in_the_page(
    live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    detail = _detail(live_server, finished_job)
    evil = '<img src=x onerror="alert(1)">'
    detail["stages"][0]["search_fallbacks"] = [evil]
    detail["stages"][0]["probes"][0].update(ok=False, forecast=None, reason=evil)
    detail["name"] = evil
    html = job_body(JobDetail.model_validate(detail), "")
    assert "<img" not in html and 'onerror="' not in html
    # shown as typed: the name (heading and summary), the note, the probe's tooltip in the SVG
    assert html.count("&lt;img src=x onerror=&#34;alert(1)&#34;&gt;") >= 4


def test_each_stage_states_the_rule_that_set_its_lr_and_its_evidence(
    live_server: ServerProcess, finished_job: dict[str, Any]
) -> None:
    detail = _detail(live_server, finished_job)
    html = job_body(JobDetail.model_validate(detail), "")
    for stage in detail["stages"]:
        for decision in stage["decisions"]:
            assert f"rule {decision['rule']}: lr " in html
    assert any(stage["decisions"] for stage in detail["stages"])
    # the probe table shows what the search ranked: the forecast less the cooldown's drop
    assert "cooldown drop" in html and "ranked by" in html
    detail["stages"][1]["decisions"][-1].update(rule="hold-previous", note="held <b>")
    html = job_body(JobDetail.model_validate(detail), "")
    assert "rule hold-previous" in html and "held &lt;b&gt;" in html


def _auth(job: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {job['token']}"}


def _detail(server: ServerProcess, job: dict[str, Any]) -> dict[str, Any]:
    response = get(
        server, f"/v1/jobs/{job['job_id']}", headers={"Authorization": f"Bearer {job['token']}"}
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# --------------------------------------------------------------------------- the browser
def chromium() -> str:
    """Path of headless Chromium; fails (or skips, with AUTOLR_SKIP_BROWSER=1) without it."""
    if os.environ.get(SKIP_BROWSER_ENV) == "1":
        pytest.skip(f"{SKIP_BROWSER_ENV}=1: the headless-browser check of the dashboard is off")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "headless Chromium (a 'chromium' on PATH) is needed to check that the dashboard "
            "renders, and .ci/browser (run by make test) could not install it: run "
            f"'sudo apt-get install -y chromium', or set {SKIP_BROWSER_ENV}=1 to skip this test"
        )
    return path


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_pages_render_in_headless_chromium(
    live_server: ServerProcess,
    finished_job: dict[str, Any],
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    binary = chromium()
    # an old link with the token: the browser follows the redirect and keeps the cookie
    job_url = (
        f"{live_server.url}/dashboard/jobs/{finished_job['job_id']}?token={finished_job['token']}"
    )
    html = run_chromium(binary, tmp_path / "profile", "--dump-dom", job_url).stdout
    dom = tags(html)
    charts = dom.find("svg")
    assert len(charts) >= 5  # LR, loss, and one per stage
    assert len(dom.find("polyline", "lr")[0]["points"].split()) >= 10
    assert dom.find("path", "train-loss")[0]["d"].startswith("M")
    assert all(p["d"].startswith("M") for p in dom.find("path", "gp-mean"))
    assert dom.find("path", "gp-mean")
    assert len(dom.find("div", "decision")) >= 3 and "rule search-best: lr" in html
    assert finished_job["token"] not in html  # the page never echoes the credential

    listing = tags(
        run_chromium(
            binary,
            tmp_path / "profile",
            "--dump-dom",
            f"{live_server.url}/dashboard?key={ADMIN_KEY}",
        ).stdout
    )
    assert any(finished_job["job_id"] in a["href"] for a in listing.find("a"))

    shot = artifacts_dir / "dashboard.png"
    shot.unlink(missing_ok=True)
    run_chromium(
        binary, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,1800", job_url
    )
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1400, 1800)
    check_screenshot(shot)


def _near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def _hex(colour: str, opacity: float = 1.0) -> tuple[int, int, int]:
    """An SVG fill as the screen shows it on white at ``opacity``."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    r, g, b = (round(255 - opacity * (255 - c)) for c in rgb)
    return r, g, b


def check_screenshot(path: Path) -> None:
    """The picture holds what the page promises: the LR curve across the page's width, the
    segment-kind bands, and a stage's rule box."""
    from PIL import Image

    from autolr.server.dashboard import KIND_COLOURS, LR_COLOUR

    image = Image.open(path).convert("RGB")
    width, height = image.size
    pixels = image.load()
    assert pixels is not None
    lr_columns = [
        x
        for x in range(0, width, 2)
        if any(_near(pixels[x, y], _hex(LR_COLOUR), 30) for y in range(0, height, 2))
    ]
    assert lr_columns, "no LR curve in the screenshot"
    # the charts use the page's width, not a third of it
    assert max(lr_columns) - min(lr_columns) > 0.75 * width
    for kind in ("warmup", "probe", "train", "anneal"):  # bands drawn at 18% opacity
        band = _hex(KIND_COLOURS[kind], 0.18)
        hits = sum(
            _near(pixels[x, y], band, 6) for x in range(0, width, 4) for y in range(0, height, 4)
        )
        assert hits > 200, kind
    rule_border = _hex("#009E73")  # the left border of each stage's "why" box
    assert any(
        _near(pixels[x, y], rule_border, 10) for x in range(width // 2) for y in range(height)
    ), "no stage rule box in the screenshot"
