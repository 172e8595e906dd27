"""The guard of `dashboard/serve.py`, called as ASGI with the connection's peer address injected:
open mode answers only this machine, whatever headers a client sends. (The real server, started
from another folder or on every interface: tests/e2e/test_open_mode.py.)"""

from __future__ import annotations

import asyncio

import pytest

from dashboard import serve
from flcore import settings


def call(scope: dict) -> tuple[bool, list[dict]]:
    """Send one request (or WebSocket handshake) through the guard: (reached the app, messages sent)."""
    reached, sent = [], []

    async def app(scope, receive, send):
        reached.append(True)

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
