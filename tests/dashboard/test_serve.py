"""`dashboard/serve.py` called as ASGI with the connection's peer address injected: open mode
answers only this machine, whatever headers a client sends; sign-in hashes off the event loop
and is throttled. (The real server, started from another folder or on every interface:
tests/e2e/test_open_mode.py.)"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from dashboard import access, serve
from flcore import settings
from flcore.auth import SignInThrottle, Users


def call(scope: dict, page=None) -> tuple[bool, list[dict]]:
    """Send one request (or WebSocket handshake) through the guard: (reached the app, messages sent)."""
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(True)
        if page:
            await page(scope, receive, send)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(serve.Guard(app)(scope, receive, send))
    return bool(reached), sent


def request(peer: str | None, host: str = "127.0.0.1:8501", websocket: bool = False, origin: str | None = None) -> dict:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    scope = {
        "type": "websocket" if websocket else "http", "path": "/_stcore/stream" if websocket else "/",
        "method": "GET", "headers": headers, "query_string": b"", "client": None if peer is None else (peer, 40000),
    }  # fmt: skip
    return scope


@pytest.mark.parametrize("peer", ["192.0.2.10", "10.0.0.5", "::ffff:192.0.2.10", "2001:db8::1", None])
def test_open_mode_refuses_another_machine_whatever_host_it_names(peer):
    for host in ("127.0.0.1:8501", "localhost:8501", "[::1]:8501"):
        reached, sent = call(request(peer, host))
        assert not reached and sent[0]["status"] == 403
        assert b"only answers on the machine it runs on" in b"".join(m.get("body", b"") for m in sent)
        reached, sent = call(request(peer, host, websocket=True, origin=f"http://{host}"))
        assert not reached and sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_open_mode_serves_this_machine(peer):
    assert call(request(peer))[0]
    assert call(request(peer, websocket=True, origin="http://127.0.0.1:8501"))[0]
    assert not call(request(peer, host="evil.example"))[0]  # DNS rebinding: this machine, someone else's page


def test_an_operator_may_open_it_to_the_network_explicitly(server_settings):
    settings.use(server_settings.with_changes(allow_open_network=True))
    assert call(request("192.0.2.10", host="flcore.lab:8501"))[0]


def test_the_server_refuses_to_start_open_on_a_network_address():
    for address in ("0.0.0.0", "::", "192.0.2.1", None, ""):
        problem = serve.open_network_problem(address, "open", allow_open_network=False)
        assert problem and "FLCORE_USERS" in problem and "FLCORE_ALLOW_OPEN_NETWORK=1" in problem
    for address in ("127.0.0.1", "localhost", "::1"):
        assert serve.open_network_problem(address, "open", allow_open_network=False) is None
    assert serve.open_network_problem("0.0.0.0", "password", allow_open_network=False) is None
    assert serve.open_network_problem("0.0.0.0", "open", allow_open_network=True) is None


def test_allow_open_network_is_a_checked_setting():
    assert settings.Settings.from_environment({}).allow_open_network is False
    assert settings.Settings.from_environment({"FLCORE_ALLOW_OPEN_NETWORK": "1"}).allow_open_network is True
    with pytest.raises(ValueError, match="FLCORE_ALLOW_OPEN_NETWORK='everyone' must be 1 or 0"):
        settings.Settings.from_environment({"FLCORE_ALLOW_OPEN_NETWORK": "everyone"})


# Sign-in ----------------------------------------------------------------------------------------
@pytest.fixture
def signin(tmp_path, server_settings, monkeypatch):
    """POST the sign-in form from `peer`: (status, body) of the answer."""
    users = Users(tmp_path / "users.json")
    users.add("alice", "alice-password")
    settings.use(server_settings.with_changes(users_file=users.path))
    monkeypatch.setattr(serve, "THROTTLE", SignInThrottle())
    app = Starlette(routes=[Route(access.SIGNIN_PATH, serve.signin, methods=["GET", "POST"])])

    def post(user: str, password: str, peer: str = "192.0.2.7", body: bytes | None = None, headers=()) -> tuple[int, str]:
        data = urlencode({"user": user, "password": password, "next": "/"}).encode() if body is None else body
        chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)] or [b""]
        sent, messages = [], [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http", "method": "POST", "path": access.SIGNIN_PATH, "query_string": b"", "client": (peer, 5000),
            "headers": [*headers, (b"host", b"127.0.0.1:8501"), (b"content-type", b"application/x-www-form-urlencoded")],
            "server": ("127.0.0.1", 8501), "scheme": "http",
        }  # fmt: skip
        asyncio.run(app(scope, receive, send))
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]).decode()

    return post


def test_the_password_is_hashed_off_the_event_loop(signin, monkeypatch):
    threads = []
    real = Users.authenticate

    def authenticate(self, *args):
        try:
            asyncio.get_running_loop()
            threads.append("event loop")  # every other page and WebSocket would wait for the hash
        except RuntimeError:
            threads.append("worker thread")
        return real(self, *args)

    monkeypatch.setattr(Users, "authenticate", authenticate)
    assert signin("alice", "alice-password")[0] == 303
    assert signin("alice", "wrong password")[0] == 401
    assert threads == ["worker thread", "worker thread"]


def test_guessing_passwords_is_refused_after_five_failures(signin, monkeypatch):
    for _ in range(5):
        status, page = signin("alice", "guess")
        assert status == 401 and "do not match" in page
    status, page = signin("alice", "alice-password")  # even the right password: no more guesses this minute
    assert status == 429 and "Too many failed sign-ins" in page
    hashed = []
    monkeypatch.setattr(Users, "authenticate", lambda *a: hashed.append(a))
    assert signin("alice", "guess")[0] == 429 and not hashed  # refused before any hash is computed


def test_one_address_trying_many_names_is_refused_after_twenty_failures(signin):
    for i in range(20):
        assert signin(f"user{i}", "guess", peer="198.51.100.4")[0] == 401
    assert signin("alice", "alice-password", peer="198.51.100.4")[0] == 429
    assert signin("alice", "alice-password", peer="192.0.2.99")[0] == 303  # alice, from elsewhere, signs in


def test_a_sign_in_body_over_16_kb_is_refused_before_it_is_parsed(signin, monkeypatch):
    parsed, real = [], serve.parse_qsl
    monkeypatch.setattr(serve, "parse_qsl", lambda *a, **k: parsed.append(a) or real(*a, **k))
    huge = b"user=alice&password=" + b"x" * 10 * 2**20  # 10 MB, in 4 KB chunks and without Content-Length
    status, page = signin("", "", body=huge)
    assert status == 413 and "at most 16 KB" in page and not parsed
    lying = [(b"content-length", str(10 * 2**20).encode())]
    assert signin("", "", body=b"user=a", headers=lying)[0] == 413 and not parsed  # refused on the header alone
    assert signin("", "", body=b"user=alice&password=x", headers=[(b"content-type", b"multipart/form-data; boundary=x")])[0] == 400
    assert signin("alice", "alice-password")[0] == 303 and parsed


# Framing and origins ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin", [None, "http://evil.example", "http://127.0.0.1:9999", "null", "http://127.0.0.1:8501.evil.example", "ftp://127.0.0.1:8501"]
)
def test_a_websocket_must_come_from_this_servers_own_page(origin):
    reached, sent = call(request("127.0.0.1", websocket=True, origin=origin))
    assert not reached and sent == [{"type": "websocket.close", "code": 1008}]
    assert call(request("127.0.0.1", websocket=True, origin="http://127.0.0.1:8501"))[0]
    assert call(request("127.0.0.1", host="LocalHost:8501", websocket=True, origin="http://localhost:8501"))[0]


def test_every_response_forbids_framing():
    async def page(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<p>app</p>"})

    for peer in ("127.0.0.1", "192.0.2.10"):  # served, and refused
        sent = call(request(peer), page)[1]
        headers = dict(sent[0]["headers"])
        assert headers[b"x-frame-options"] == b"DENY" and headers[b"content-security-policy"] == b"frame-ancestors 'none'"


# Signing out ------------------------------------------------------------------------------------
def test_an_open_websocket_is_closed_at_its_next_message_once_its_user_signs_out(tmp_path, server_settings):
    users = Users(tmp_path / "users.json")
    users.add("alice", "alice-password")
    settings.use(server_settings.with_changes(users_file=users.path))
    token = users.token(users.authenticate("alice", "alice-password"))
    scope = request("127.0.0.1", websocket=True, origin="http://127.0.0.1:8501")
    scope["headers"].append((b"cookie", f"{access.SESSION_COOKIE}={token}".encode()))
    browser = [{"type": "websocket.receive", "bytes": b"rerun 1"}, {"type": "websocket.receive", "bytes": b"rerun 2"}]
    got, sent = [], []

    async def app(scope, receive, send):
        await send({"type": "websocket.accept"})
        got.append(await receive())  # signed in: the app gets it
        users.end_sessions("alice")  # alice signs out, in another tab
        got.append(await receive())
        await send({"type": "websocket.send", "bytes": b"what the app still had to say"})

    async def receive():
        return browser.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(serve.Guard(app)(scope, receive, send))
    assert got == [{"type": "websocket.receive", "bytes": b"rerun 1"}, {"type": "websocket.disconnect", "code": 1008}]
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"] and sent[1]["code"] == 1008
    reached, sent = call(scope)  # and the same cookie cannot open a new one
    assert not reached and sent == [{"type": "websocket.close", "code": 1008}]


def test_streamlits_upload_limit_is_the_servers(server_settings):
    from streamlit import config as st_config

    before = st_config.get_option("server.maxUploadSize")
    try:
        serve.cap_uploads(5)
        assert st_config.get_option("server.maxUploadSize") == 5  # a 60 MB upload is refused as it arrives
    finally:
        st_config.set_option("server.maxUploadSize", before)
