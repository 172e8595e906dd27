"""Who is using the dashboard, and what they may see of it.

The server's sign-in mode is the first that applies (see `flcore.auth`):

- **oidc**: `.streamlit/secrets.toml` has an `[auth]` section: Streamlit's own `st.login`
  (OpenID Connect through Authlib) signs people in with the operator's identity provider.
- **password**: `FLCORE_USERS` names a users file: `dashboard/serve.py` serves a sign-in page at
  `/auth/signin`, which sets a signed session cookie that every page reads.
- **open**: neither: a laptop. The one local user owns every run, and `serve.py` answers only
  requests addressed to this machine (localhost), so nobody else can use it.

`current_user()` runs at the top of every page: it returns the signed-in `User`, or draws the
sign-in screen and stops the page. Run names and anything else people type are shown through
`plain()`, which escapes Markdown, so a name such as `[sign in again](http://...)` is shown
as those characters, never as a link or an image.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote, urlencode, urlparse

import streamlit as st

from flcore import settings as server_settings
from flcore.auth import AuthError, User, Users, local_user

SESSION_COOKIE = "flcore_session"
SIGNIN_PATH = "/auth/signin"
SIGNOUT_PATH = "/auth/signout"
USER_KEY = "signed_in_user"  # the User of this script run (recomputed from the cookie every run)

Mode = Literal["oidc", "password", "open"]


def oidc_configured() -> bool:
    """Whether the operator configured an identity provider for `st.login`."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def auth_mode() -> Mode:
    if oidc_configured():
        return "oidc"
    if server_settings.current().users_file is not None:
        return "password"
    return "open"


def current_user() -> User:
    """The signed-in user, or the sign-in screen and a stop."""
    mode, s = auth_mode(), server_settings.current()
    if mode == "open":
        user = local_user()
    elif mode == "oidc":
        if not st.user.is_logged_in:
            _signin_screen("Sign in with your organisation's account to use this server.")
            st.button("Sign in", type="primary", icon=":material/login:", on_click=st.login)
            st.stop()
        name = str(st.user.get("email") or st.user.get("name") or st.user.get("sub"))
        user = User(name, admin=name in s.admins)
    else:
        try:
            user = Users(s.users_file).user_from_token(session_token(), s.admins)
        except AuthError as err:  # a broken users file: say so, never a traceback
            st.error(f"Sign-in is not available: {plain(err)}. Ask the operator of this server.")
            st.stop()
        if user is None:
            _signin_screen("This server is shared: sign in to start runs and to manage yours. Everyone signed in can see every run.")
            st.link_button("Sign in", f"{SIGNIN_PATH}?next={quote(_here(), safe='')}", type="primary", icon=":material/login:")
            st.stop()
    st.session_state[USER_KEY] = user
    return user


def session_token() -> str | None:
    """The sign-in token the browser sent (the cookie `serve.py` set at sign-in)."""
    return st.context.cookies.get(SESSION_COOKIE)


def user() -> User:
    """The user `current_user()` found for this script run."""
    return st.session_state.get(USER_KEY) or local_user()


def sign_out_control(user: User) -> None:
    """Who is signed in, and how to sign out (in the sidebar)."""
    mode = auth_mode()
    role = " (admin)" if user.admin and mode != "open" else ""
    st.caption(f"Signed in as **{plain(user.name)}**{role}" if mode != "open" else f"Running as {plain(user.name)} on this machine")
    if mode == "oidc":
        st.button("Sign out", icon=":material/logout:", on_click=st.logout, key="sign_out")
    elif mode == "password":
        st.link_button("Sign out", SIGNOUT_PATH, icon=":material/logout:")


def _here() -> str:
    """The path and query of the page being asked for, to come back to after signing in."""
    path = urlparse(st.context.url or "").path or "/"
    query = urlencode({k: v for k, v in st.query_params.items()})
    return path + (f"?{query}" if query else "")


def _signin_screen(message: str) -> None:
    st.title("Federated learning simulator")
    st.info(message, icon=":material/lock:")


# Text from people -------------------------------------------------------------------------------
_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")  # every ASCII punctuation character


_AUTOLINKS = re.compile(r"(://|(?i:www)(?=\.)|(?=@))")  # where GFM would start a bare link
WORD_JOINER = "\u2060"  # invisible, and breaks a bare URL or e-mail address apart


def plain(text: object) -> str:
    """`text` for any Streamlit element that renders Markdown, shown exactly as typed: every ASCII
    punctuation character becomes a numeric character reference (`&#58;` for `:`), which Markdown
    shows as the character but never reads as syntax (no link, image, emphasis, HTML, Streamlit
    directive such as `:red[...]`). Bare URLs and e-mail addresses are turned into links after
    that, on the text itself, so an invisible word joiner goes after each `://`, each `www`
    before a dot and before each `@`."""
    text = _AUTOLINKS.sub(lambda m: m.group() + WORD_JOINER, str(text).replace("\n", " "))
    return _PUNCTUATION.sub(lambda m: f"&#{ord(m.group())};", text)
