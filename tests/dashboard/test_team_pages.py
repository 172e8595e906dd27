"""The pages of a shared server under AppTest: sign-in, owners, quotas, and text from people
shown as typed. The real browser, cookies and two people at once: tests/e2e/test_shared_server.py."""

from __future__ import annotations

import pytest
from dashboard_helpers import app, errors, page, record_run, shown, texts

from dashboard import access
from flcore import settings
from flcore.auth import Users

RUN, RUNS, NEW = "app_pages/run.py", "app_pages/runs.py", "app_pages/new_run.py"
MARKDOWN_NAME = "[sign in again](http://evil.example) ![x](http://evil.example/x.png) **now** :red[red] <b>b</b>"


@pytest.fixture
def team(tmp_path, monkeypatch, server_settings):
    """A server with password sign-in: alice and bob; `sign_in(name)` makes the page see them."""
    users = Users(tmp_path / "users.json")
    users.add("alice", "alice-password")
    users.add("bob", "bob-password")
    settings.use(server_settings.with_changes(users_file=users.path, max_queued=1))
    token = {}
    monkeypatch.setattr(access, "session_token", lambda: token.get("value"))

    def sign_in(name: str | None) -> None:
        token["value"] = users.token(users.authenticate(name, f"{name}-password")) if name else None

    return sign_in


def test_without_signing_in_a_shared_server_shows_only_the_sign_in(store, team):
    team(None)
    at = app().run()
    assert "sign in to start runs" in texts(at)
    assert [b.proto.url for b in at.get("link_button")] == ["/auth/signin?next=%2F"]
    assert not at.get("plotly_chart") and not at.number_input  # no form, no preview: nothing of the app


def test_only_the_owner_may_cancel_or_delete_but_everyone_may_look(store, team):
    run_id = record_run(store, stop_after=1, status=None)  # a running run...
    store._conn().execute("UPDATE runs SET owner = 'alice' WHERE run_id = ?", (run_id,))  # ... of alice's
    team("bob")
    at = page(RUN, run=run_id)
    assert "started by alice" in texts(at) and at.get("plotly_chart")
    cancel = at.button(key="cancel_button")
    assert cancel.disabled and "Only alice or an admin" in cancel.proto.help
    team("alice")
    at = page(RUN, run=run_id)
    assert not at.button(key="cancel_button").disabled
    at.button(key="cancel_button").click().run()
    assert store.get_run(run_id).cancel_requested

    done = record_run(store)
    store._conn().execute("UPDATE runs SET owner = 'alice' WHERE run_id = ?", (done,))
    team("bob")
    at = page(RUNS)
    at.selectbox(key="runs_pick").set_value(done).run()
    assert at.button(key="delete_button").disabled


def test_a_submission_over_the_quota_is_refused_with_the_limit(store, team):
    team("alice")
    at = app().run()
    at.number_input(key="cfg.rounds").set_value(5000).run()  # still queued or running at the second click
    at.button(key="run_button").click().run()
    (first,) = store.list_runs()
    assert first.owner == "alice" and first.active
    at = app().run()
    at.button(key="run_button").click().run()
    assert len(store.list_runs()) == 1
    assert any("the most one person may have on this server (1)" in e for e in errors(at))


def test_a_run_too_big_for_the_server_is_refused_under_the_rounds(store, server_settings):
    settings.use(server_settings.with_changes(max_client_updates=100))
    at = app().run()
    at.number_input(key="cfg.rounds").set_value(20).run()  # 20 rounds x 10 clients = 200 client updates
    assert any("200 client updates" in e for e in errors(at))
    at.button(key="run_button").click().run()
    assert store.list_runs() == []


def test_a_name_full_of_markdown_is_shown_as_typed(store):
    run_id = record_run(store, name=MARKDOWN_NAME)
    at = page(RUN, run=run_id)
    title = at.title[0].value
    assert shown(title) == MARKDOWN_NAME  # what a reader sees is the name...
    assert "](" not in title and "**" not in title and ":red[" not in title  # ...and nothing Markdown could act on
    at.button(key="again_button").click().run()  # the "settings copied from" banner
    banner = next(i.value for i in at.info if "Settings copied from" in shown(i.value))
    assert MARKDOWN_NAME in shown(banner) and "](http" not in banner
    at = page(RUN, run="[x](http://evil.example)")
    warning = at.warning[0].value
    assert "[x](http://evil.example)" in shown(warning) and "](http" not in warning


LINK = "[Sign in again](http://evil.example)"


def test_a_sentence_under_a_field_shows_a_typed_name_as_typed(store):
    at = app().run()
    at.text_input(key="cfg.name").set_value(LINK + " report\u202eexe.pdf").run()  # refused: the sentence quotes it
    quoting = [e.value for e in at.error if "name=" in shown(e.value)]  # under the field, and in the list above Run
    assert len(quoting) == 2
    for error in quoting:
        assert f"name='{LINK} report\\u202eexe.pdf' is invalid: it holds U+202E" in shown(error)  # as typed...
        assert "](http" not in error and "[Sign" not in error  # ...and nothing Markdown could make a link of
    at.button(key="run_button").click().run()
    assert store.list_runs() == []


def test_a_sentence_under_a_field_shows_an_uploaded_column_name_as_typed(store, server_settings):
    rows = [f"{LINK},label"] + [f"{i},{'ab'[i % 2]}" for i in range(20)]
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("file").run()
    at.get("file_uploader")[0].upload("mine.csv", ("\n".join(rows) + "\n").encode(), "text/csv").run()
    at.text_input(key="cfg.label_column").set_value("**kind**").run()  # not one of its columns: the sentence lists them
    quoting = [e.value for e in at.error if "is not a column of" in shown(e.value)]
    assert quoting
    for error in quoting:
        assert "label_column='**kind**'" in shown(error) and LINK in shown(error)
        assert "](http" not in error and "**" not in error


def test_a_preview_of_many_clients_draws_a_bounded_part_of_them(store):
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("synthetic").run()
    at.selectbox(key="cfg.partition").set_value("iid").run()
    at.number_input(key="cfg.num_clients").set_value(1200).run()
    assert "The charts and the table show the first 1,000 of the 1,200 clients (a preview draws at most 1,000)" in texts(at)
    (table,) = at.dataframe  # the per-client statistics
    assert len(table.value) == 1000


def test_the_new_run_form_lists_only_ones_own_uploads(store, team):
    from flcore.data import uploads

    rows = b"x1,x2,label\n" + b"".join(f"{i},{i % 7},{'ab'[i % 2]}\n".encode() for i in range(40))
    mine = uploads.save(rows, "alices.csv", settings.current(), "alice")
    uploads.save(rows.replace(b"x1", b"y1"), "bobs.csv", settings.current(), "bob")
    team("alice")
    at = app().run()
    at.selectbox(key="cfg.dataset").set_value("file").run()
    assert at.selectbox(key="cfg.data_file").options == ["alices.csv (1 KB)"]  # bob's is not offered
    assert at.selectbox(key="cfg.data_file").value == str(mine.path)
