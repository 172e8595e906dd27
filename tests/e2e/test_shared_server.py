"""A shared server in a real browser: two people signed in through the sign-in page, owners,
a quota, a run name full of Markdown shown as typed, no data folder in the form, and the guard
against scripts (a WebSocket without an Origin header) and foreign hosts in open mode.
Screenshots of each step are saved under test-output/screenshots/."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from harness import ROOT, DashboardServer, launch_chromium, missing_chromium, set_number, shoot, wait_for_text

from flcore.auth import Users
from flcore.store import RunStore

pytestmark = pytest.mark.e2e

MARKDOWN_NAME = "[sign in again](http://evil.example) ![x](http://evil.example/x.png) **now** :red[red]"


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("team")
    users = Users(home / "users.json")
    users.add("alice", "alice-password")
    users.add("bob", "bob-password")
    env = {
        "FLCORE_MAX_WORKERS": "1", "FLCORE_USERS": str(users.path), "FLCORE_MAX_QUEUED": "1",
        "FLCORE_DATA_DIR": str(home / "data"), "FLCORE_DOWNLOAD": "0",
    }  # fmt: skip
    server = DashboardServer(home / "runs.db", ROOT / "test-output" / "e2e-team-server.log", env)
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(str(err))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium():
    problem = missing_chromium()
    if problem:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


def visible(text: str) -> str:
    """Text as a reader sees it (without the invisible word joiners that keep bare URLs plain)."""
    return text.replace("\u2060", "").strip()


def signed_in(chromium, server, name: str):
    """A browser context of `name`, signed in through the sign-in page."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server.url + "/")  # not signed in: the server sends the browser to its sign-in page
    page.wait_for_url(re.compile(r"/auth/signin"))
    page.fill("#user", name)
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    wait_for_text(page, "do not match")  # a wrong password is a sentence, and nothing else
    page.fill("#password", f"{name}-password")
    page.click("button[type=submit]")
    wait_for_text(page, f"Signed in as {name}")
    return page


def test_two_people_own_their_runs_and_see_each_others(team_server, chromium, screenshots):
    alice = signed_in(chromium, team_server, "alice")
    wait_for_text(alice, "Ready:")
    assert alice.get_by_text("Data folder").count() == 0 and alice.get_by_text("Download when missing").count() == 0
    alice.locator('[data-testid="stSelectbox"]').first.click()  # the dataset list says what this server has
    wait_for_text(alice, "MNIST · not on this server")
    alice.keyboard.press("Escape")
    shoot(alice, screenshots / "10-team-new-run.png")

    set_number(alice, "Rounds", 3000)  # long enough to be running while bob looks
    alice.get_by_text("Advanced: name, seeds, hardware").click()
    name = alice.locator('[data-testid="stTextInput"]').filter(has=alice.get_by_text("Run name", exact=True)).locator("input")
    name.fill(MARKDOWN_NAME)
    name.press("Enter")
    wait_for_text(alice, "Ready:")
    alice.locator(".st-key-run_button button").first.click()
    alice.wait_for_url(re.compile(r"/run\?run=[0-9a-f]+"))
    run_url = alice.url
    title = alice.locator("h1").first
    title.wait_for()
    assert visible(title.inner_text()) == MARKDOWN_NAME  # shown as typed...
    assert title.locator("[data-heading-text] a, img, strong").count() == 0  # ...with no link, image or bold made of it
    assert alice.locator('a[href^="http://evil"], img[src^="http://evil"]').count() == 0
    assert not alice.locator(".st-key-cancel_button button").first.is_disabled()
    shoot(alice, screenshots / "11-team-alice-run.png")

    bob = signed_in(chromium, team_server, "bob")
    bob.goto(run_url)
    bob.locator('[data-testid="stProgress"]').first.wait_for()
    wait_for_text(bob, "started by alice")
    assert bob.locator(".st-key-cancel_button button").first.is_disabled()  # bob may look, not cancel
    assert visible(bob.locator("h1").first.inner_text()) == MARKDOWN_NAME
    shoot(bob, screenshots / "12-team-bob-looks.png")
    bob.goto(team_server.url + "/runs")
    bob.locator('[data-testid="stDataFrame"]').wait_for()
    assert bob.locator(".st-key-delete_button button").first.is_disabled()
    assert bob.locator('a[href^="http://evil"], img[src^="http://evil"]').count() == 0

    alice.goto(team_server.url + "/")  # a second run is over alice's quota of one: said before Run is pressed
    wait_for_text(alice, "the most one person may have on this server (1)")
    alice.locator(".st-key-run_button button").first.click()  # and pressing Run queues nothing
    shoot(alice, screenshots / "13-team-over-quota.png")
    runs = RunStore(team_server.store).list_runs()
    assert [(r.owner, r.name) for r in runs] == [("alice", MARKDOWN_NAME)]
    RunStore(team_server.store).request_cancel(runs[0].run_id)
    for page in (alice, bob):
        page.context.close()


def test_a_script_cannot_open_the_app_without_an_origin_and_a_sign_in(team_server):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws_url = team_server.url.replace("http", "ws") + "/_stcore/stream"
    users = Users(Path(team_server.env["FLCORE_USERS"]))
    cookie = {"Cookie": f"flcore_session={users.token(users.authenticate('alice', 'alice-password'))}"}
    foreign = {"origin": "http://evil.example", "additional_headers": cookie}  # another site's page, in alice's browser
    for kwargs in ({}, {"additional_headers": cookie}, {"origin": team_server.url}, foreign):  # no Origin, no sign-in, not ours
        with pytest.raises(InvalidStatus), connect(ws_url, open_timeout=10, **kwargs):
            pass
    with urllib.request.urlopen(team_server.url + "/auth/signin", timeout=10) as page:  # no other site may frame a page
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    with connect(ws_url, origin=team_server.url, additional_headers=cookie, open_timeout=10, subprotocols=["streamlit"]):
        pass  # a signed-in browser is let in


def test_without_sign_in_the_server_answers_only_on_this_machine(server):
    request = urllib.request.Request(server + "/", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 403 and "only answers on the machine it runs on" in err.value.read().decode()
    with urllib.request.urlopen(server + "/", timeout=10) as ok:  # addressed to 127.0.0.1: served
        assert ok.status == 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 303 is the answer to look at, not a page to follow


def _http(url: str, cookie: str | None = None, form: dict | None = None) -> tuple[int, dict[str, str]]:
    """(status, headers) of one request, without following redirects."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    headers = {"Cookie": f"flcore_session={cookie}"} if cookie else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(team_server):
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    Users(Path(team_server.env["FLCORE_USERS"])).add("carol", "carol-password")  # nobody else's sessions are touched
    status, headers = _http(team_server.url + "/auth/signin", form={"user": "carol", "password": "carol-password", "next": "/"})
    assert status == 303
    cookie = re.search(r"flcore_session=([^;]+)", headers["set-cookie"]).group(1)
    assert _http(team_server.url + "/", cookie)[0] == 200  # signed in

    ws_url = team_server.url.replace("http", "ws") + "/_stcore/stream"
    rerun = BackMsg()
    rerun.rerun_script.query_string = ""
    with connect(ws_url, origin=team_server.url, additional_headers={"Cookie": f"flcore_session={cookie}"},
                 open_timeout=10, subprotocols=["streamlit"]) as tab:  # fmt: skip  # a tab left open
        tab.send(rerun.SerializeToString())
        assert tab.recv(timeout=30)  # the app answers it

        status, headers = _http(team_server.url + "/auth/signout", cookie)  # carol signs out in another tab
        assert status == 303 and headers["location"] == "/auth/signin"

        tab.send(rerun.SerializeToString())  # the open tab's next click
        deadline = time.monotonic() + 30
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() < deadline:
                tab.recv(timeout=max(0.1, deadline - time.monotonic()))  # what the first rerun still sends, then the close
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    status, headers = _http(team_server.url + "/run", cookie)  # the old cookie, kept
    assert status == 303 and headers["location"].startswith("/auth/signin")
    with pytest.raises(InvalidStatus), connect(ws_url, origin=team_server.url, open_timeout=10,
                                               additional_headers={"Cookie": f"flcore_session={cookie}"}):  # fmt: skip
        pass
    status, headers = _http(team_server.url + "/auth/signin", form={"user": "carol", "password": "carol-password", "next": "/"})
    fresh = re.search(r"flcore_session=([^;]+)", headers["set-cookie"]).group(1)
    assert status == 303 and _http(team_server.url + "/", fresh)[0] == 200  # signing in again works
