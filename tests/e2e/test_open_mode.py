"""A server without sign-in, attacked from another address, for real: inside a network namespace
this test makes for itself (`unshare -rn`: its own loopback, with 192.0.2.1 standing for a
machine on the network, so nothing listens outside the test), it starts `dashboard/serve.py`

1. with `streamlit run` from another folder and no --server.address: it must listen on 127.0.0.1
   only (`.streamlit/config.toml` in the folder it was started from is not read);
2. with `--server.address 0.0.0.0`: it must refuse to start, in a sentence, before answering;
3. with uvicorn on 0.0.0.0 (no Streamlit flags at all): a request from 192.0.2.1 that names
   `Host: 127.0.0.1` must get the refusal page, and its WebSocket must be closed, while
   127.0.0.1 is served.

Run as a script (`python test_open_mode.py`) it is the part inside the namespace, printing JSON.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NETWORK = "192.0.2.1"  # TEST-NET-1: another machine, as far as the server can tell
START_S = 90

pytestmark = pytest.mark.e2e


def test_open_mode_cannot_be_reached_from_another_address():
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.fail(
            "This test needs unprivileged user and network namespaces (`unshare -rn`) to start servers that nobody "
            "else can reach; enable them (sysctl kernel.unprivileged_userns_clone=1) or run it where they are."
        )
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, __file__], capture_output=True, text=True, timeout=4 * START_S, cwd=tempfile.gettempdir()
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])

    default = found["started_elsewhere"]
    assert default["listening"] == ["127.0.0.1"], default
    assert default["loopback"] == 200 and default["network"] == "refused", default

    refused = found["open_on_0.0.0.0"]
    assert refused["exit"] not in (None, 0) and not refused["answered"], refused
    assert "no sign-in" in refused["stderr"] and "FLCORE_ALLOW_OPEN_NETWORK=1" in refused["stderr"], refused
    assert "Traceback" not in refused["stderr"], refused

    attack = found["uvicorn_on_0.0.0.0"]
    assert attack["loopback"] == 200, attack
    assert attack["network_as_localhost"] == 403 and "only answers on the machine it runs on" in attack["page"], attack
    assert attack["network_websocket"] == "refused", attack


# Inside the namespace ----------------------------------------------------------------------------
def _start(command: list[str], cwd: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=15)


def _get(host: str, port: int, path: str = "/", source: str | None = None, host_header: str | None = None):
    """(status, body) of one GET; 'refused' when nothing listens there, 'reset' when a closing server drops it."""
    conn = http.client.HTTPConnection(host, port, timeout=10, source_address=(source, 0) if source else None)
    try:
        conn.request("GET", path, headers={"Host": host_header} if host_header else {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except ConnectionRefusedError:
        return "refused", ""
    except (ConnectionResetError, http.client.RemoteDisconnected):  # a server that is shutting down mid-request
        return "reset", ""
    finally:
        conn.close()


def _wait_healthy(proc: subprocess.Popen, port: int) -> bool:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and proc.poll() is None:
        if _get("127.0.0.1", port, "/_stcore/health")[0] == 200:
            return True
        time.sleep(0.3)
    return False


def _listening(port: int) -> list[str]:
    """The local addresses listening on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for name, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is little-endian
                found.append(socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, words))
    return sorted(found)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _websocket_from_network(port: int) -> str:
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((NETWORK, 0))
    sock.connect((NETWORK, port))
    uri = f"ws://127.0.0.1:{port}/_stcore/stream"  # the Host header names this machine
    try:
        with connect(uri, sock=sock, origin=f"http://127.0.0.1:{port}", open_timeout=10, subprotocols=["streamlit"]):
            return "opened"
    except (InvalidStatus, WebSocketException, OSError):
        return "refused"


def _inside() -> dict:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{NETWORK}/32", "dev", "lo"], check=True)
    home = Path(tempfile.mkdtemp(prefix="flcore-open-mode-"))
    elsewhere = home / "elsewhere"
    (elsewhere / ".streamlit").mkdir(parents=True)
    (elsewhere / ".streamlit" / "config.toml").write_text('[server]\naddress = "0.0.0.0"\n')  # the folder's own: not read
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLCORE_", "STREAMLIT_"))}
    env.update(FLCORE_STORE=str(home / "runs.db"), FLCORE_MAX_WORKERS="1", FLCORE_DATA_DIR=str(home / "data"), PYTHONUNBUFFERED="1")
    streamlit = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "serve.py"), "--server.headless", "true"]
    found = {}

    port = _free_port()
    proc = _start([*streamlit, "--server.port", str(port)], str(elsewhere), home / "elsewhere.log", env)
    try:
        healthy = _wait_healthy(proc, port)
        found["started_elsewhere"] = {
            "healthy": healthy, "listening": _listening(port), "loopback": _get("127.0.0.1", port)[0],
            "network": _get(NETWORK, port, source=NETWORK)[0],
        }  # fmt: skip
    finally:
        _stop(proc)

    port = _free_port()
    proc = _start([*streamlit, "--server.port", str(port), "--server.address", "0.0.0.0"], str(elsewhere), home / "open.log", env)
    answered = False
    try:
        deadline = time.monotonic() + START_S
        while proc.poll() is None and time.monotonic() < deadline:
            answered = answered or _get("127.0.0.1", port, "/_stcore/health")[0] == 200
            time.sleep(0.3)
    finally:
        _stop(proc)
    found["open_on_0.0.0.0"] = {"exit": proc.returncode, "answered": answered, "stderr": (home / "open.log").read_text()[-2000:]}

    port = _free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "dashboard.serve:app", "--app-dir", str(ROOT), "--host", "0.0.0.0", "--port", str(port)]
    proc = _start(uvicorn, str(elsewhere), home / "uvicorn.log", env)
    try:
        healthy = _wait_healthy(proc, port)
        status, page = _get(NETWORK, port, source=NETWORK, host_header=f"127.0.0.1:{port}")
        found["uvicorn_on_0.0.0.0"] = {
            "healthy": healthy, "loopback": _get("127.0.0.1", port)[0], "network_as_localhost": status, "page": page[:2000],
            "network_websocket": _websocket_from_network(port),
        }  # fmt: skip
    finally:
        _stop(proc)
    if not healthy:
        found["uvicorn_log"] = (home / "uvicorn.log").read_text()[-2000:]
    return found


if __name__ == "__main__":
    print(json.dumps(_inside()))
