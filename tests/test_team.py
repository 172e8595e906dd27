"""What a shared server promises, engine side: server settings, users and sign-in tokens, owners,
quotas and a fair queue, workers that stop when their server dies, and stores that fail in a
sentence. (The dashboard side: tests/dashboard/test_team_pages.py and tests/e2e.)"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flcore.auth import AuthError, SignInThrottle, User, Users, check_password, hash_password
from flcore.cli import main
from flcore.config import ExperimentConfig
from flcore.service.quotas import QuotaError, next_runs, submission_problems
from flcore.service.scheduler import Runner
from flcore.settings import Settings, SettingsError
from flcore.store import RunStore, StoreError, actions

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_clients=4, rounds=2, model="logistic", batch_size=32, partition="iid")


def tiny(**changes) -> ExperimentConfig:
    return ExperimentConfig.create(**{**TINY, **changes})


# Server settings ---------------------------------------------------------------------------------
def test_settings_come_from_a_file_and_the_environment_wins(tmp_path):
    file = tmp_path / "server.toml"
    file.write_text('data_dir = "/srv/data"\ndownload = false\nmax_queued = 7\nadmins = ["ana"]\n')
    s = Settings.from_environment({"FLCORE_SETTINGS": str(file), "FLCORE_MAX_QUEUED": "3", "FLCORE_USERS": str(tmp_path / "u.json")})
    assert (s.data_dir, s.download, s.max_queued, s.admins) == (Path("/srv/data"), False, 3, frozenset({"ana"}))
    assert s.users_file == tmp_path / "u.json"
    assert Settings.from_environment({}).download is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLCORE_DOWNLOAD": "maybe"}, "FLCORE_DOWNLOAD='maybe' must be 1 or 0"),
        ({"FLCORE_MAX_QUEUED": "0"}, "FLCORE_MAX_QUEUED='0' must be a whole number of at least 1"),
    ],
)
def test_a_bad_setting_is_a_sentence_naming_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_environment(env)


def test_a_settings_file_with_an_unknown_key_names_it(tmp_path):
    (tmp_path / "s.toml").write_text("data_folder = '/x'\n")
    with pytest.raises(SettingsError, match="unknown settings data_folder"):
        Settings.from_environment({"FLCORE_SETTINGS": str(tmp_path / "s.toml")})


# Users and sign-in tokens ----------------------------------------------------------------------
def test_passwords_are_stored_only_as_salted_scrypt_hashes(tmp_path):
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert stored != hash_password("correct horse")  # salted
    assert check_password("correct horse", stored) and not check_password("wrong horse", stored)
    users = Users(tmp_path / "users.json")
    users.add("alice", "correct horse")
    assert "correct horse" not in users.path.read_text()
    assert oct(users.path.stat().st_mode & 0o777) == "0o600"


def test_sign_in_gives_a_signed_token_that_expires_and_cannot_be_forged(tmp_path):
    users = Users(tmp_path / "users.json")
    users.add("alice", "correct horse")
    users.add("bob", "battery staple", admin=True)
    alice = users.authenticate("alice", "correct horse")
    assert alice == User("alice", admin=False)
    for name, password in (("alice", "nope"), ("mallory", "correct horse")):
        with pytest.raises(AuthError, match="do not match"):  # the same sentence for both: no names leak
            users.authenticate(name, password)
    token = users.token(alice)
    assert users.user_from_token(token) == alice
    assert users.user_from_token(token.replace("alice", "bob")) is None  # the signature no longer matches
    assert users.user_from_token(token, now=time.time() + 13 * 3600) is None  # expired
    assert users.user_from_token(users.token(User("bob")), admins=frozenset()) == User("bob", admin=True)
    users.remove("alice")
    assert users.user_from_token(token) is None  # a removed user's sign-in ends
    with pytest.raises(AuthError, match="at least 8 characters"):
        users.add("carol", "short")


def test_signing_out_ends_every_token_given_before_and_a_new_password_does_too(tmp_path):
    users = Users(tmp_path / "users.json")
    users.add("alice", "correct horse")
    users.add("a.b", "correct horse")  # names may hold dots
    alice = users.authenticate("alice", "correct horse")
    first, second = users.token(alice), users.token(alice)  # two tabs, or two devices
    other = users.token(User("a.b"))
    assert users.user_from_token(first) == alice and users.user_from_token(second) == alice
    assert users.end_sessions("alice") == 1
    assert users.user_from_token(first) is None and users.user_from_token(second) is None  # every one of them
    assert users.user_from_token(other) == User("a.b")  # nobody else is signed out
    fresh = users.token(alice)
    assert users.user_from_token(fresh) == alice  # signing in again works
    assert oct(users.sessions_path.stat().st_mode & 0o777) == "0o600"
    users.add("alice", "a new password")  # a new password: the old one's sign-ins end
    assert users.user_from_token(fresh) is None
    users.remove("alice")
    users.add("alice", "correct horse")  # the name again: its old tokens stay dead
    assert users.user_from_token(fresh) is None and users.user_from_token(first) is None
    body, _, signature = fresh.rpartition(".")
    name, generation, expiry = body.split(".")
    assert users.user_from_token(f"{name}.{int(generation) + 3}.{expiry}.{signature}") is None  # the number is signed
    legacy = f"alice.{int(time.time()) + 3600}"  # the format before generations, signed as it was then
    old_signature = __import__("hmac").new(users._secret(), legacy.encode(), hashlib.sha256).hexdigest()
    assert users.user_from_token(f"{legacy}.{old_signature}") is None


def test_sign_outs_at_the_same_time_all_count(tmp_path):
    import threading

    users = Users(tmp_path / "users.json")
    users.add("alice", "correct horse")
    threads = [threading.Thread(target=users.end_sessions, args=("alice",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert users.generation("alice") == 8
    users.sessions_path.write_text("not json")
    with pytest.raises(AuthError, match="sessions file .* cannot be read as JSON"):
        users.generation("alice")  # a broken file is a sentence, not a traceback


def test_an_unknown_name_costs_the_same_one_hash_as_a_wrong_password(tmp_path, monkeypatch):
    users = Users(tmp_path / "users.json")
    users.add("alice", "correct horse")
    import flcore.auth as auth

    auth._dummy_hash()  # made once per process, before anyone signs in
    calls = []
    real = auth.hashlib.scrypt
    monkeypatch.setattr(auth.hashlib, "scrypt", lambda *a, **k: calls.append(k["n"]) or real(*a, **k))
    for name in ("alice", "mallory", "nobody-at-all"):
        calls.clear()
        with pytest.raises(AuthError, match="do not match"):
            users.authenticate(name, "wrong horse")
        assert calls == [2**14], name  # one scrypt of the same cost, whether the name exists or not


def test_failed_sign_ins_are_throttled_per_name_and_per_address():
    throttle = SignInThrottle(per_name=5, per_address=20, window_s=60, max_keys=100)
    for i in range(5):
        assert not throttle.blocked("alice", "192.0.2.1", now=i)
        throttle.failed("alice", "192.0.2.1", now=i)
    assert throttle.blocked("alice", "192.0.2.1", now=10)
    assert throttle.blocked("alice", "198.51.100.9", now=10)  # the name, from any address
    assert not throttle.blocked("bob", "198.51.100.9", now=10)
    assert not throttle.blocked("alice", "192.0.2.1", now=60.5)  # the oldest failure left the window
    for i in range(20):  # one address trying many names
        throttle.failed(f"user{i}", "203.0.113.5", now=100)
    assert throttle.blocked("someone-else", "203.0.113.5", now=101) and not throttle.blocked("someone-else", "192.0.2.1", now=101)
    throttle.succeeded("alice")
    for i in range(200):  # random names cannot fill memory
        throttle.failed(f"random{i}", "203.0.113.6", now=200)
    assert len(throttle._failures) <= 100


def test_the_cli_adds_and_lists_users(tmp_path, capsys, monkeypatch):
    path = tmp_path / "users.json"
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("a long password\n"))
    assert main(["users", "add", "dana", "--file", str(path), "--admin", "--password-stdin"]) == 0
    assert main(["users", "list", "--file", str(path)]) == 0
    assert "dana  (admin)" in capsys.readouterr().out
    assert Users(path).authenticate("dana", "a long password").admin


# Owners, quotas and the queue ------------------------------------------------------------------
def test_only_the_owner_or_an_admin_may_act_on_a_run(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(tiny(), owner="alice")
    info = store.get_run(run_id)
    assert info.owner == "alice"
    assert actions(info, User("alice")) == {"cancel"}
    assert actions(info, User("bob")) == frozenset()
    assert actions(info, User("root", admin=True)) == {"cancel"}
    runner = Runner(store.path, max_workers=1, settings=Settings(max_queued=5))  # not started: nothing trains
    with pytest.raises(PermissionError, match="Only its owner or an admin may cancel alice's run; you are signed in as bob"):
        runner.cancel(run_id, User("bob"))
    with pytest.raises(PermissionError, match="may delete"):
        runner.delete(run_id, User("bob"))
    runner.cancel(run_id, User("alice"))
    assert store.get_run(run_id).status == "cancelled"
    runner.delete(run_id, User("root", admin=True))
    assert store.get_run(run_id) is None


def test_a_submission_over_a_limit_is_refused_naming_the_limit(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    settings = Settings(max_queued=2, max_client_updates=1_000)
    runner = Runner(store.path, max_workers=1, settings=settings)  # not started: runs stay queued
    alice = User("alice")
    runner.submit(tiny(), user=alice)
    runner.submit(tiny(), user=alice)
    with pytest.raises(QuotaError, match=r"you have 2 runs queued or running, the most one person may have on this server \(2\)"):
        runner.submit(tiny(), user=alice)
    runner.submit(tiny(), user=User("bob"))  # another person is not held up
    with pytest.raises(QuotaError) as err:
        runner.submit(tiny(num_clients=100, rounds=500), user=User("carol"))
    assert err.value.problems[0].field == "rounds" and "50,000 client updates" in str(err.value)
    # 5,000 clients for 10,000 rounds, accepted before, is refused by the default limit
    assert submission_problems(store, tiny(num_clients=5000, rounds=10_000, partition="iid"), "dan", Settings())


def test_a_run_that_would_compute_too_much_is_refused_with_its_estimate(tmp_path):
    from flcore.service.quotas import run_cost

    store = RunStore(tmp_path / "runs.db")
    runner = Runner(store.path, max_workers=1, settings=Settings())  # the default limits
    big = tiny(model="cnn", num_clients=25, rounds=10_000, local_epochs=20)  # 250,000 client updates: within that limit
    with pytest.raises(QuotaError) as err:
        runner.submit(big, user=User("alice"))
    (problem,) = err.value.problems
    assert problem.field == "rounds"
    assert re.search(r"this run would compute about [\d,]+ TFLOP, about \d+ (hours|days) of one core", problem.message)
    assert "local_epochs=20" in problem.message and "at most 200 TFLOP on this server (FLCORE_MAX_RUN_TFLOP)" in problem.message
    assert store.list_runs() == []
    cost = run_cost(big, Settings())
    assert cost.train_samples == 1438 and cost.parameters == 188_810
    # rounds x clients x epochs x samples a client trains on (each keeps a fifth as its own test data)
    assert cost.samples_trained == pytest.approx(10_000 * 25 * 20 * 1438 * 0.8 / 25)
    ditto = run_cost(big.replace(personalization="ditto"), Settings())
    assert ditto.samples_trained == pytest.approx(2 * cost.samples_trained) and ditto.flop > 1.9 * cost.flop  # two models a client
    half = run_cost(big.replace(local_epochs=10), Settings())
    assert half.flop < cost.flop / 1.9  # half the local work is about half the cost
    assert runner.submit(big.replace(local_epochs=1), user=User("alice"))  # about 90 TFLOP: accepted
    assert runner.submit(big.replace(local_epochs=2), user=User("bob"), source="cli")  # the default epochs: accepted too
    with pytest.raises(QuotaError, match="at most 1 TFLOP"):
        Runner(store.path, max_workers=1, settings=Settings(max_run_tflop=1)).submit(big.replace(local_epochs=1), user=User("carol"))
    assert Settings.from_environment({"FLCORE_MAX_RUN_TFLOP": "50"}).max_run_tflop == 50
    with pytest.raises(ValueError, match="FLCORE_MAX_RUN_TFLOP='lots' must be a whole number of at least 1"):
        Settings.from_environment({"FLCORE_MAX_RUN_TFLOP": "lots"})


def test_the_queue_takes_people_in_turn(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    alices = [store.create_run(tiny(), owner="alice") for _ in range(4)]  # alice queued first, four runs
    bob = store.create_run(tiny(), owner="bob")
    carol = store.create_run(tiny(), owner="carol")
    order = next_runs(store, 3, Settings(max_running=2))
    assert order == [alices[0], bob, carol]  # one each before anyone gets a second
    store.claim(alices[0])
    assert next_runs(store, 1, Settings(max_running=1)) == [bob]  # alice already trains one


def test_resuming_passes_the_same_admission_check_as_submitting(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    runner = Runner(store.path, max_workers=1, settings=Settings(max_queued=3))  # not started: runs stay queued
    alice = User("alice")
    first, second, _ = (runner.submit(tiny(), user=alice) for _ in range(3))
    runner.cancel(first, alice)
    runner.cancel(second, alice)
    runner.submit(tiny(), user=alice)
    runner.submit(tiny(), user=alice)  # three queued again
    refusal = r"you have 3 runs queued or running, the most one person may have on this server \(3\)"
    for cancelled in (first, second):
        with pytest.raises(QuotaError, match=refusal):
            runner.resume(cancelled, alice)
        assert store.get_run(cancelled).status == "cancelled"  # left as it was
    with pytest.raises(QuotaError, match=refusal):
        runner.submit(tiny(), user=alice)  # the same sentence as a new submission
    assert store.active_by_owner()["alice"] == (3, 0)
    with pytest.raises(PermissionError, match="the most one person may have"):  # what the Resume button shows
        runner.resume(first, alice)


def test_submissions_and_resumes_at_the_same_time_never_pass_the_limit(tmp_path, monkeypatch):
    real = RunStore.active_by_owner

    def slow(self):  # a reader that takes a moment widens any gap between the check and the insert
        counts = real(self)
        time.sleep(0.02)
        return counts

    monkeypatch.setattr(RunStore, "active_by_owner", slow)
    for trial in range(10):
        store, outcomes = _race(tmp_path / f"runs{trial}.db", people=8, resumes=2, limit=3)
        queued, running = store.active_by_owner()["alice"]
        assert queued + running == 3 and sorted(outcomes) == ["queued"] * 3 + ["refused"] * 5, f"trial {trial}: {outcomes}"


def _race(path: Path, people: int, resumes: int, limit: int) -> tuple[RunStore, list[str]]:
    """`resumes` of alice's cancelled runs resumed and the rest of `people` runs submitted, all at
    once, under a limit of `limit`; what each attempt came to."""
    import threading

    store = RunStore(path)
    runner = Runner(store.path, max_workers=1, settings=Settings(max_queued=limit))  # not started: runs stay queued
    stopped = [runner.submit(tiny(), user=User("alice")) for _ in range(resumes)]
    for run_id in stopped:
        runner.cancel(run_id)
    start = threading.Barrier(people)
    outcomes: list[str] = []

    def attempt(i: int) -> None:
        start.wait()
        try:
            if i < resumes:
                runner.resume(stopped[i], User("alice"))
            else:
                runner.submit(tiny(), user=User("alice"))
            outcomes.append("queued")
        except QuotaError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return store, outcomes


def test_one_free_worker_takes_people_in_turn(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    alices = [store.create_run(tiny(), owner="alice") for _ in range(3)]  # alice queued first, three runs
    bob = store.create_run(tiny(), owner="bob")
    started = []
    for _ in range(4):  # one worker: each run starts when the one before it has finished
        (run_id,) = next_runs(store, 1, Settings(max_running=2))
        assert store.claim(run_id)
        time.sleep(0.01)
        store.finish(run_id, "done")
        started.append(run_id)
    assert started == [alices[0], bob, alices[1], alices[2]]  # bob waits for one of alice's runs, not three


# Workers and their server ----------------------------------------------------------------------
SERVER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from flcore.config import ExperimentConfig
    from flcore.service.scheduler import Runner
    runner = Runner({store!r}, max_workers=1, threads_per_worker=1)
    runner.start()
    runner.submit(ExperimentConfig.create(num_clients=4, rounds=5000, model="logistic", batch_size=32, partition="iid"))
    while True:
        time.sleep(1)
    """
)


def test_a_worker_whose_server_dies_interrupts_its_run_and_stops(tmp_path):
    store_path = tmp_path / "runs.db"
    server = subprocess.Popen([sys.executable, "-c", SERVER.format(root=str(ROOT), store=str(store_path))], start_new_session=True)
    try:
        store = RunStore(store_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = store.list_runs()
            if runs and runs[0].rounds_done >= 2 and runs[0].worker:
                break
            time.sleep(0.1)
        (run,) = store.list_runs()
        worker = run.worker["pid"]
        server.send_signal(signal.SIGKILL)  # the server dies without a word; its forkserver goes with it
        server.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.1)
        assert not _alive(worker), "the orphaned worker kept training"
        run = store.get_run(run.run_id)
        assert run.status == "interrupted" and "server that started this run stopped" in run.error
        assert "resume" in actions(run)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}/stat").exists() else "X"
    return status not in ("Z", "X")  # a zombie has stopped


# Stores that cannot be used ----------------------------------------------------------------------
def test_a_store_that_is_a_folder_or_not_a_database_is_one_sentence_and_exit_2(tmp_path, capsys):
    (tmp_path / "notes.db").write_text("not a database")
    for path, message in ((tmp_path, "is a folder"), (tmp_path / "notes.db", "is not a flcore run store")):
        with pytest.raises(StoreError, match=message):
            RunStore(path)
        assert main(["runs", "--store", str(path)]) == 2
        assert main(["run", "--rounds", "1", "--store", str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_reading_a_store_needs_no_write_access_and_leaves_an_old_store_as_it_was(tmp_path, capsys):
    old = tmp_path / "v1.db"
    shutil.copy(ROOT / "tests" / "fixtures" / "store_v1.db", old)
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    store = RunStore(old, readonly=True)
    assert store.version() == 1  # read as it is, not migrated
    assert {r.name for r in store.list_runs()} >= {"v1 finished", "v1 queued"}
    done = next(r for r in store.list_runs() if r.name == "v1 finished")
    assert len(store.clients_frame(done.run_id)) == 20 and store.get_run(done.run_id).owner is None
    assert main(["show", done.run_id, "--store", str(old)]) == 0
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before
    current = tmp_path / "current.db"
    RunStore(current).create_run(tiny())
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # opened to read, it cannot write
        RunStore(current, readonly=True).create_run(tiny())


def test_out_is_checked_before_a_run_is_recorded(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    store = tmp_path / "runs.db"
    assert main(["run", "--rounds", "1", "--store", str(store), "--out", str(tmp_path / "a-file")]) == 2
    assert "--out" in capsys.readouterr().err
    assert not store.exists() or RunStore(store).list_runs() == []


def test_a_run_that_fails_as_it_starts_prints_a_sentence_not_a_traceback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cmd = [sys.executable, "-m", "flcore", "run", "--dataset", "mnist", "--data-dir", str(empty), "--no-download", "--quiet",
           "--rounds", "1", "--store", str(tmp_path / "runs.db"), "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1
    assert "MNIST is not in" in done.stderr and "Traceback" not in done.stderr


def test_the_run_store_and_the_uploads_are_the_servers_accounts_alone(tmp_path):
    from flcore.data import uploads

    old_umask = os.umask(0o022)  # the usual umask, which left them readable by every account
    try:
        store = RunStore(tmp_path / "new-folder" / "runs.db")
        store.create_run(tiny())
        mode = {p.name: oct(p.stat().st_mode & 0o777) for p in store.path.parent.iterdir()}
        assert mode == {"runs.db": "0o600", "runs.db-wal": "0o600", "runs.db-shm": "0o600"}
        assert oct(store.path.parent.stat().st_mode & 0o777) == "0o700"
        shared = tmp_path / "operators-folder"
        shared.mkdir(mode=0o755)
        RunStore(shared / "runs.db")
        assert oct(shared.stat().st_mode & 0o777) == "0o755"  # a folder the operator made keeps its mode
        assert oct((shared / "runs.db").stat().st_mode & 0o777) == "0o600"

        settings = Settings(data_dir=tmp_path / "data")
        upload = uploads.save(b"x,label\n1,a\n2,b\n", "mine.csv", settings, "alice")
        assert oct(uploads.folder(settings).stat().st_mode & 0o777) == "0o700"
        assert {p.name: oct(p.stat().st_mode & 0o777) for p in uploads.folder(settings).iterdir()} == {
            upload.path.name: "0o600",
            "index.json": "0o600",
        }
    finally:
        os.umask(old_umask)


def test_the_runner_refuses_a_run_on_someone_elses_upload_for_all_but_an_admin(tmp_path):
    from flcore.data import uploads

    settings = Settings(data_dir=tmp_path / "data")
    upload = uploads.save(b"x,label\n" + b"".join(f"{i},{i % 2}\n".encode() for i in range(30)), "cars.csv", settings, "alice")
    config = ExperimentConfig.create(dataset="file", data_file=str(upload.path), model="logistic", num_clients=2, rounds=1)
    runner = Runner(tmp_path / "runs.db", max_workers=1, settings=settings)  # not started: nothing trains
    with pytest.raises(QuotaError, match="'cars.csv' was uploaded by someone else"):
        runner.submit(config, user=User("bob"))
    assert runner.store.list_runs() == []
    runner.submit(config, user=User("alice"))
    runner.submit(config, user=User("root", admin=True))
    assert len(runner.store.list_runs()) == 2
