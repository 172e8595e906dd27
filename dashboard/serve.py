"""`streamlit run dashboard/serve.py`: the dashboard as a server, for a laptop or a team.

It serves the pages of `app.py` through Streamlit's ASGI `st.App`, and adds what a shared server
needs before anyone opens a page:

- **The runner starts with the server** (the lifespan hook): queued runs start, and runs left
  `running` by a server that died are marked interrupted, at start-up, not at the first page
  view; the forkserver imports torch and flcore, and the page code is warmed up.
- **Password sign-in** when `FLCORE_USERS` names a users file: `/auth/signin` (a form that
  checks the password and sets a signed, HttpOnly, SameSite session cookie), `/auth/signout`
  (which signs its user out everywhere: every token given to them before stops working, see
  `flcore.auth`). The cookie is checked on every request, and on every message an open
  WebSocket sends: a tab still open after its user signed out (or whose sign-in expired) is
  disconnected at its next click or refresh, and a reload asks for the password.
  The hash is checked in a worker thread (the event loop never waits on it), and after 5 failed
  sign-ins a minute for a user name, or 20 from one client address, attempts get a 429. The
  form is read only up to 16 KB (a 413 past that), never parsed whole first.
- **Another site's page cannot drive it**: a WebSocket must send an Origin header naming the
  host and port it is addressed to (browsers always send the page's origin, which a page cannot
  change), so a foreign page open in a signed-in person's browser cannot use their session; and
  every response forbids framing (X-Frame-Options: DENY, CSP frame-ancestors 'none'). A script
  can send any Origin it likes: what keeps a script out is the sign-in (or, in open mode, the
  peer address), not this check.
- **Open mode stays on this machine**: without sign-in (no users file, no `[auth]` in
  `.streamlit/secrets.toml`), only connections from this machine are answered (the socket's peer
  address, which a client cannot choose, must be loopback) and only when addressed to localhost
  (which stops DNS rebinding); anyone else gets a page saying how to configure sign-in.
  `dashboard/.streamlit/config.toml` binds the server to 127.0.0.1 wherever it is started from,
  and the server refuses to start open on any other address unless the operator sets
  `FLCORE_ALLOW_OPEN_NETWORK=1`, which lets everyone who can reach it in as its owner.
- **An unusable run store does not stop it**: a store file that is a folder, damaged, truncated
  or may not be written is said in one sentence on stderr and on every page (its file, what is
  wrong, what to do), and the server starts anyway; one that SQLite's quick check finds damaged
  is said at start-up and above every page, and the runs that can be read stay usable.
- **Uploads stop at the limit**: Streamlit's `server.maxUploadSize` is set to
  `FLCORE_MAX_UPLOAD_MB`, so a larger file is refused as it arrives, not after.

`streamlit run dashboard/app.py` still serves the same pages without these (the runner then
starts at the first page view), which is fine on a laptop.
"""

from __future__ import annotations

import html
import ipaddress
import sys
import threading
from contextlib import asynccontextmanager
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlparse

import anyio
import streamlit as st
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard import access, state  # noqa: E402
from flcore import settings as server_settings  # noqa: E402
from flcore.auth import AuthError, SignInThrottle, Users  # noqa: E402

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(address: str | None) -> bool:
    """Whether `address` (an IP address as a socket reports it, or 'localhost') is this machine."""
    if address == "localhost":
        return True
    try:
        ip = ipaddress.ip_address((address or "").strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1, as a dual-stack socket reports an IPv4 peer
    return ip.is_loopback


@asynccontextmanager
async def lifespan(app):
    problem = state.store_problem() or state.store_damage()  # the pages say it too; the server still starts
    if problem:
        print(f"flcore: {problem}", file=sys.stderr)
    if not state.store_problem():
        state.get_runner()  # starts the scheduler and the forkserver, marks runs left by a dead server
    threading.Thread(target=state.warm_up_pages, name="flcore-page-warm-up", daemon=True).start()
    yield


# Sign-in pages ---------------------------------------------------------------------------------
SIGNIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Federated learning simulator</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; background: #f6f7f9; display: grid; place-items: center; min-height: 100vh; margin: 0; }}
 form {{ background: white; padding: 2rem 2.2rem; border-radius: 10px; box-shadow: 0 2px 12px #0001; width: 20rem; }}
 h1 {{ font-size: 1.3rem; margin: 0 0 1.2rem; }}
 label {{ display: block; font-size: .9rem; margin: .8rem 0 .3rem; }}
 input {{ width: 100%; box-sizing: border-box; padding: .55rem; border: 1px solid #ccd; border-radius: 6px; font-size: 1rem; }}
 button {{ margin-top: 1.3rem; width: 100%; padding: .6rem; border: 0; border-radius: 6px; background: #2563EB; color: white; font-size: 1rem; }}
 .error {{ color: #b42318; font-size: .9rem; margin-top: 1rem; }}
 p.note {{ color: #667; font-size: .85rem; margin-top: 1.2rem; }}
</style></head>
<body><form method="post" action="/auth/signin">
<h1>Federated learning simulator</h1>
<input type="hidden" name="next" value="{next}">
<label for="user">User name</label><input id="user" name="user" value="{user}" autocomplete="username" autofocus required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
{error}
<p class="note">Accounts are made by the operator of this server (<code>python -m flcore users add NAME</code>).</p>
</form></body></html>"""


THROTTLE = SignInThrottle()  # failed sign-ins per user name (5 a minute) and per client address (20 a minute)
TOO_MANY = "Too many failed sign-ins for this user name or from this address: wait a minute, then try again."


def _safe_next(value: str | None) -> str:
    """Only a path on this server (no open redirect to another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or urlparse(value).netloc:
        return "/"
    return value


def _signin_page(next_path: str, error: str = "", status: int = 200, user: str = "") -> HTMLResponse:
    shown = f'<p class="error">{html.escape(error)}</p>' if error else ""
    page = SIGNIN_HTML.format(next=html.escape(next_path, quote=True), error=shown, user=html.escape(user, quote=True))
    return HTMLResponse(page, status_code=status)


async def signin(request: Request) -> Response:
    settings = server_settings.current()
    if settings.users_file is None:
        return RedirectResponse("/", status_code=303)
    if request.method == "GET":
        return _signin_page(_safe_next(request.query_params.get("next")))
    origin = request.headers.get("origin")
    if origin and urlparse(origin).netloc != request.headers.get("host"):
        return _signin_page("/", "Sign in from this server's own page.", status=403)
    form = await _small_form(request)
    if isinstance(form, Response):
        return form
    next_path = _safe_next(str(form.get("next", "/")))
    users = Users(settings.users_file)
    name = str(form.get("user", "")).strip()
    address = request.client.host if request.client else ""
    if THROTTLE.blocked(name, address):
        return _signin_page(next_path, TOO_MANY, status=429, user=name)
    try:  # scrypt takes ~50 ms of CPU: in a worker thread, so the event loop keeps serving everyone else
        user = await anyio.to_thread.run_sync(users.authenticate, name, str(form.get("password", "")), settings.admins)
    except AuthError as err:
        THROTTLE.failed(name, address)
        return _signin_page(next_path, str(err), status=401, user=name)
    THROTTLE.succeeded(name)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        access.SESSION_COOKIE, users.token(user), httponly=True, samesite="strict", path="/",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


MAX_SIGNIN_BYTES = 16 * 1024  # a user name, a password and a path fit in far less


async def _small_form(request: Request) -> dict[str, str] | Response:
    """The sign-in form's fields, read only up to MAX_SIGNIN_BYTES (by Content-Length, and again
    while the body arrives, for a client that sends none or lies), or the page that refuses it."""
    too_big = _signin_page("/", f"A sign-in form is at most {MAX_SIGNIN_BYTES // 1024} KB; this one is larger.", status=413)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return _signin_page("/", "Sign in with this server's own form.", status=400)
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > MAX_SIGNIN_BYTES):
        return too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SIGNIN_BYTES:
            return too_big
    try:
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), max_num_fields=10))
    except ValueError:
        return _signin_page("/", "Sign in with this server's own form.", status=400)


async def signout(request: Request) -> Response:
    """Sign the user of this cookie out everywhere (their session generation moves on, so this
    cookie, a copy of it, and every other tab's and device's stop working), then drop the cookie."""
    settings = server_settings.current()
    response = RedirectResponse(access.SIGNIN_PATH if settings.users_file else "/", status_code=303)
    response.delete_cookie(access.SESSION_COOKIE, path="/")
    if settings.users_file is None:
        return response
    users = Users(settings.users_file)
    try:
        user = users.user_from_token(request.cookies.get(access.SESSION_COOKIE), settings.admins)
        if user is not None:  # in a worker thread: it waits for the sessions file's lock
            await anyio.to_thread.run_sync(users.end_sessions, user.name)
    except AuthError as err:  # a broken users or sessions file: the cookie is dropped all the same
        response = _signin_page("/", f"Signed out of this browser only: {err}. Ask the operator of this server.", status=500)
        response.delete_cookie(access.SESSION_COOKIE, path="/")
    return response


# The guard -------------------------------------------------------------------------------------
OPEN_MODE_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not on this machine</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>This dashboard only answers on the machine it runs on</h1>
<p>It has no sign-in configured, so anyone who could reach it would act as its owner. To share it,
configure sign-in: set <code>FLCORE_USERS</code> to a users file (make one with
<code>python -m flcore users add NAME</code>), or an identity provider in
<code>.streamlit/secrets.toml</code>. The README says how.</p></body></html>"""


PUBLIC_PATHS = ("/auth/", "/_stcore/health", "/_stcore/host-config", "/static/", "/favicon")


class Guard:
    """ASGI middleware in front of the app:

    - a WebSocket must send an Origin header naming this server (browsers always send the page's;
      another site's page sends its own; a script may send any), and in password mode a valid session
      cookie, which is checked again on every message it sends: once it is no longer valid (its
      user signed out anywhere, or it expired) the WebSocket is closed before the message
      reaches the app;
    - every HTTP response forbids framing by other sites;
    - in password mode, anything but the sign-in pages and static files needs a valid session
      cookie: a page request without one is sent to the sign-in page, anything else refused;
    - in open mode (no sign-in configured) only connections from this machine (the socket's peer,
      `scope["client"]`, not a header) addressed to localhost are served, unless the operator set
      FLCORE_ALLOW_OPEN_NETWORK=1.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        websocket = scope["type"] == "websocket"
        if not websocket:
            send = _no_framing(send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        mode = access.auth_mode()
        host = urlparse("//" + headers.get("host", "")).hostname or ""
        if mode == "open" and not server_settings.current().allow_open_network:
            peer = (scope.get("client") or (None, None))[0]
            if not is_loopback(peer) or host not in LOCAL_HOSTS:
                return await _refuse(scope, receive, send, HTMLResponse(OPEN_MODE_HTML, status_code=403))
        if websocket and not _same_origin(headers):
            return await _refuse(scope, receive, send)  # policy violation: not a browser, or another site's page
        path = scope.get("path", "/")
        if mode == "password" and not path.startswith(PUBLIC_PATHS) and not _signed_in(headers):
            if websocket or scope.get("method") != "GET":
                return await _refuse(scope, receive, send, Response("Sign in first.", status_code=401))
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            return await RedirectResponse(f"{access.SIGNIN_PATH}?next={quote(target, safe='')}", status_code=303)(scope, receive, send)
        if websocket and mode == "password":
            receive, send = _signed_in_while_open(headers, receive, send)
        await self.app(scope, receive, send)


FRAMING_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'")]


def _no_framing(send):
    """`send`, adding to every HTTP response the headers that forbid other sites to frame it
    (clickjacking: a hidden Cancel or Delete under a foreign page's button)."""

    async def framed(message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *FRAMING_HEADERS]}
        await send(message)

    return framed


def _same_origin(headers: dict[str, str]) -> bool:
    """Whether a WebSocket comes from this server's own page: its Origin (which browsers set and
    pages cannot) names the host and port the request is addressed to. A script sends none; a page
    of another site sends its own."""
    origin = urlparse(headers.get("origin", ""))
    host = headers.get("host", "").lower()
    return origin.scheme in ("http", "https") and bool(host) and origin.netloc.lower() == host


def _signed_in_while_open(headers: dict[str, str], receive, send):
    """`receive` and `send` of a WebSocket whose session cookie is checked again before each
    message from the browser reaches the app. Once the cookie no longer signs anyone in, the
    WebSocket is closed (1008, policy violation), the app is told the browser went away (so its
    session ends), and whatever it still sends is dropped. The cookie is the one of the
    handshake: a browser cannot change it on an open WebSocket."""
    closed = False

    async def checked_receive():
        nonlocal closed
        message = await receive()
        if closed or message["type"] != "websocket.receive" or _signed_in(headers):
            return message
        closed = True
        await send({"type": "websocket.close", "code": 1008, "reason": "Signed out: sign in again."})
        return {"type": "websocket.disconnect", "code": 1008}

    async def checked_send(message) -> None:
        if not closed:
            await send(message)

    return checked_receive, checked_send


def _signed_in(headers: dict[str, str]) -> bool:
    cookies = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except CookieError:
        return False
    token = cookies[access.SESSION_COOKIE].value if access.SESSION_COOKIE in cookies else None
    settings = server_settings.current()
    try:
        return Users(settings.users_file).user_from_token(token, settings.admins) is not None
    except AuthError:
        return False


async def _refuse(scope, receive, send, response: Response | None = None) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
    else:
        await (response or Response(status_code=403))(scope, receive, send)


# Start-up ---------------------------------------------------------------------------------------
def open_network_problem(address: str | None, mode: str, allow_open_network: bool) -> str | None:
    """Why the server must not start listening on `address` (None: it may)."""
    if mode != "open" or allow_open_network or is_loopback(address):
        return None
    where = f"on {address}" if address else "on every network interface (no server.address is set)"
    return (
        f"This server has no sign-in and would listen {where}, so anyone who can reach it would use it as "
        "its owner. Configure sign-in (FLCORE_USERS=/path/users.json, made with `python -m flcore users add NAME`, "
        "or an [auth] section in .streamlit/secrets.toml), listen on this machine only (--server.address 127.0.0.1), "
        "or set FLCORE_ALLOW_OPEN_NETWORK=1 to let everyone who can reach it in."
    )


def cap_uploads(max_upload_mb: int) -> None:
    """Make Streamlit's own upload limit FLCORE_MAX_UPLOAD_MB, so that a larger upload is refused
    (413) by its Content-Length, or as soon as that much has arrived, instead of being received
    whole (200 MB by default) and only then refused by `flcore.data.uploads`. Streamlit reads the
    option at each upload and for each file widget, so setting it before the first is enough."""
    from streamlit import config as st_config

    st_config.set_option("server.maxUploadSize", max_upload_mb, "FLCORE_MAX_UPLOAD_MB")


def _check_start_up() -> None:
    """Refuse to start open to the network (a sentence on stderr and exit status 1, no traceback)."""
    from streamlit import config as st_config

    try:
        settings, mode = server_settings.current(), access.auth_mode()
    except ValueError as err:  # a bad FLCORE_* setting (SettingsError and the number checks)
        sys.exit(f"flcore: {err}")
    cap_uploads(settings.max_upload_mb)
    address = st_config.get_option("server.address")
    problem = open_network_problem(address, mode, settings.allow_open_network)
    if problem:
        sys.exit(f"flcore: {problem}")
    if mode == "open" and settings.allow_open_network and not is_loopback(address):
        print("flcore: FLCORE_ALLOW_OPEN_NETWORK=1: serving without sign-in to everyone who can reach this server.", file=sys.stderr)


app = st.App(
    ROOT / "dashboard" / "app.py",
    lifespan=lifespan,
    routes=[Route(access.SIGNIN_PATH, signin, methods=["GET", "POST"]), Route(access.SIGNOUT_PATH, signout)],
    middleware=[Middleware(Guard)],
)

_check_start_up()
