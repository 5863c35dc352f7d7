"""The operator's commands: ``xmpp-vtn run --config``, ``status`` and ``validate``.

Configuration checks and the status and explanation logic are called directly (fast); the
commands themselves run as ``python -m xmpp_vtn`` subprocesses where the exit code, the
messages or signals are what is tested. The end-to-end test runs the example config against
the session's real Prosody.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest
from lxml import etree

from xmpp_vtn import codec
from xmpp_vtn import VTNComponent
from xmpp_vtn.ops.config import ConfigError, LogConfig, configure_logging, load_config, load_handlers, vtn_arguments
from xmpp_vtn.ops.validate import explain, render
from xmpp_vtn.testing.prosody import free_port
from xmpp_vtn.ops.status import StoreUnavailable, gather, open_for_reading, render_text, to_json
from xmpp_vtn.store import Document, EventRecord, SQLiteStore, VenRecord
from xmpp_vtn.testing.ven import SimulatedVEN

from payloads import EVENT_MIN, REPORT_REQUEST_FULL, REPORT_REQUEST_MIN, T0

REPO = Path(__file__).resolve().parent.parent
MINIMAL = '''
vtn_id = "VTN-1"
[component]
jid = "vtn.example.com"
secret = "component-secret"
'''


def write(directory: Path, text: str, name: str = "vtn.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def cli(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xmpp_vtn", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return raised.value.errors


# -- configuration ---------------------------------------------------------------------------------

def test_minimal_config_takes_the_defaults_and_puts_the_store_beside_the_file(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert (config.vtn_id, config.component.jid, config.component.host, config.component.port) == \
        ("VTN-1", "vtn.example.com", "127.0.0.1", 5347)
    assert config.store == str(tmp_path / "xmpp-vtn.sqlite3")
    assert (config.push_timeout, config.push_concurrency, config.requested_poll_freq) == (10.0, 1024, None)
    assert (config.liveness.ping_interval, config.liveness.offline_after) == (60.0, 3)
    assert (config.log.level, config.log.format) == ("info", "text")
    assert (config.cluster.instance_id, config.cluster.lease_seconds, config.cluster.balancing) == \
        (None, 15.0, "random")
    assert "component-secret" not in repr(config)


def test_every_problem_is_reported_at_once_each_naming_its_key(tmp_path):
    errors = errors_of(write(tmp_path, '''
vtn_id = ""
push_concurrency = 0
pust_timeout = 5
[component]
jid = "vtn@example.com"
secret = "s3cret-value"
port = "abc"
[liveness]
offline_after = true
ping_interval = -1
[log]
format = "xml"
[logging]
level = "info"
[cluster]
lease_seconds = "long"
balancing = "source"
'''))
    assert 'component.port: must be an integer between 1 and 65535, got "abc"' in errors
    assert 'vtn_id: must be a non-empty string, got ""' in errors
    assert "push_concurrency: must be an integer of at least 1, got 0" in errors
    assert "pust_timeout: unknown key; did you mean push_timeout?" in errors
    assert "logging: unknown key; did you mean log?" in errors
    assert any(error.startswith("component.jid: must be the component's bare domain") for error in errors)
    assert "liveness.offline_after: must be an integer of at least 1, got true" in errors
    assert "liveness.ping_interval: must be a number of seconds, 0 or more, got -1" in errors
    assert 'log.format: must be one of "text", "json", got "xml"' in errors
    assert 'cluster.lease_seconds: must be a number of seconds, more than 0, got "long"' in errors
    assert 'cluster.balancing: must be one of "random", "bare_source", got "source"' in errors
    assert len(errors) == 11


def test_the_secret_comes_from_one_place_and_is_never_echoed(tmp_path, monkeypatch):
    base = 'vtn_id = "V"\n[component]\njid = "vtn.example.com"\n'
    assert errors_of(write(tmp_path, base)) == [
        "component.secret: missing; give secret, secret_file (a file holding it) or secret_env "
        "(an environment variable holding it)"]
    assert errors_of(write(tmp_path, base + 'secret = 123456789\n')) == ["component.secret: must be a non-empty string"]
    assert errors_of(write(tmp_path, base + 'secret = "a"\nsecret_env = "B"\n')) == [
        "component.secret: give only one of secret, secret_env"]
    monkeypatch.delenv("XMPP_VTN_TEST_SECRET", raising=False)
    assert errors_of(write(tmp_path, base + 'secret_env = "XMPP_VTN_TEST_SECRET"\n')) == [
        "component.secret_env: environment variable XMPP_VTN_TEST_SECRET is not set or empty"]
    monkeypatch.setenv("XMPP_VTN_TEST_SECRET", "from-the-environment")
    config = load_config(write(tmp_path, base + 'secret_env = "XMPP_VTN_TEST_SECRET"\n'))
    assert config.component.secret == "from-the-environment"
    (tmp_path / "secret").write_text("from-a-file\n")            # as `echo` writes it
    config = load_config(write(tmp_path, base + 'secret_file = "secret"\n'))
    assert (config.component.secret, config.component.secret_source) == ("from-a-file", f"file {tmp_path / 'secret'}")
    assert errors_of(write(tmp_path, base + 'secret_file = "nope"\n'))[0].startswith(
        f"component.secret_file: cannot read {tmp_path / 'nope'}")
    # status needs the store only: a config whose secret is not readable here still names it.
    assert load_config(write(tmp_path, base + 'secret_env = "UNSET_HERE_X"\n'), require_secret=False).vtn_id == "V"


def test_store_forms_and_relative_paths(tmp_path):
    def store(value: str) -> str:
        return load_config(write(tmp_path, f'store = "{value}"\n' + MINIMAL)).store
    assert store("vtn.db") == str(tmp_path / "vtn.db")
    assert store("sqlite:///state/../vtn.db") == str(tmp_path / "vtn.db")
    assert store(":memory:") == ":memory:"
    assert store("postgresql://vtn:pw@127.0.0.1/vtn") == "postgresql://vtn:pw@127.0.0.1/vtn"
    assert errors_of(write(tmp_path, 'store = "missing/vtn.db"\n' + MINIMAL)) == [
        f"store: directory {tmp_path / 'missing'} does not exist"]
    assert errors_of(write(tmp_path, 'store = "mysql://u:pw@h/db"\n' + MINIMAL)) == [
        'store: must be a file path, "sqlite:///path", ":memory:" or a "postgresql://" URL, got "mysql://u:***@h/db"']


def test_not_toml_is_one_error_with_its_line(tmp_path):
    errors = errors_of(write(tmp_path, 'vtn_id = "V"\n[component\n'))
    assert len(errors) == 1 and errors[0].startswith("not valid TOML") and "line 2" in errors[0]


def test_handlers_from_a_file_warn_about_a_misspelt_handler(tmp_path):
    write(tmp_path, '''
def on_create_party_registration(payload, sender):
    return "reg-" + payload["ven_id"]

async def on_created_event(payload):
    pass

def on_create_party_registraton(payload):      # the typo
    pass

def helper():
    pass
''', "my_handlers.py")
    config = load_config(write(tmp_path, 'handlers = "my_handlers.py"\n' + MINIMAL))
    handlers, warnings = load_handlers(config.handlers, tmp_path)
    assert sorted(handlers) == ["on_create_party_registration", "on_created_event"]
    assert warnings == ["handlers: on_create_party_registraton in " + config.handlers + " is not a handler name "
                        "and will never be called; did you mean on_create_party_registration?"]


def test_handlers_by_module_name_and_the_ways_they_fail(tmp_path):
    write(tmp_path, "def on_poll(ven_id):\n    return None\n", "xv_cli_poll_handlers.py")
    config = load_config(write(tmp_path, 'handlers = "xv_cli_poll_handlers"\n' + MINIMAL))
    handlers, warnings = load_handlers(config.handlers, tmp_path)
    assert list(handlers) == ["on_poll"]
    assert warnings == ["handlers: xv_cli_poll_handlers has no on_create_party_registration: every VEN's "
                        "registration will be refused"]
    assert errors_of(write(tmp_path, 'handlers = "xv_no_such_module"\n' + MINIMAL)) == [
        f"handlers: no module named 'xv_no_such_module' (looked in {tmp_path} and on the Python path)"]
    assert errors_of(write(tmp_path, 'handlers = "gone.py"\n' + MINIMAL)) == [
        f"handlers: no such file: {tmp_path / 'gone.py'}"]
    write(tmp_path, "import xv_not_installed_anywhere\n", "broken.py")
    with pytest.raises(ConfigError) as raised:
        load_handlers(str(tmp_path / "broken.py"), tmp_path)
    assert raised.value.errors[0].startswith(f"handlers: importing {tmp_path / 'broken.py'} failed at ")
    assert "ModuleNotFoundError: No module named 'xv_not_installed_anywhere'" in raised.value.errors[0]


def test_cluster_and_operator_options_reach_vtn_component(tmp_path):
    config = load_config(write(tmp_path, MINIMAL.replace('vtn_id', 'operators = ["ops@example.com"]\nvtn_id', 1)
                               + '[cluster]\ninstance_id = "vtn-a"\nlease_seconds = 7.5\nbalancing = "bare_source"\n'))
    arguments = vtn_arguments(config)
    assert (arguments["instance_id"], arguments["lease_seconds"], arguments["balancing"]) == \
        ("vtn-a", 7.5, "bare_source")
    assert arguments["operators"] == ("ops@example.com",)
    assert arguments["ping_interval"] == timedelta(seconds=60) and arguments["secret"] == "component-secret"
    VTNComponent(**{**arguments, "store": ":memory:"}).store.close()      # every argument is one it takes


def test_operators_must_be_bare_jids(tmp_path):
    with pytest.raises(ConfigError, match=r"operators: .*not a bare JID"):
        load_config(write(tmp_path, MINIMAL.replace('vtn_id', 'operators = ["ops@example.com/phone"]\nvtn_id', 1)))


def test_the_example_config_and_its_handlers_load(monkeypatch):
    monkeypatch.setenv("XMPP_VTN_SECRET", "example-secret")
    config = load_config(REPO / "examples" / "vtn.toml")
    assert (config.component.jid, config.component.port, config.vtn_id) == ("vtn.localhost", 5347, "VTN-example")
    handlers, warnings = load_handlers(config.handlers, config.path.parent)
    assert {"on_create_party_registration", "on_register_report", "on_create_opt"} <= set(handlers)
    assert warnings == []


@pytest.fixture
def root_logging():
    """configure_logging replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_logs_are_one_object_per_line_and_never_show_the_secret(root_logging):
    stream = io.StringIO()
    configure_logging(LogConfig("info", "json"), ["component-secret", 'quo"ted\\'], stream)
    logging.getLogger("xmpp_vtn.test").info("handshake with %s", "component-secret")
    logging.getLogger("xmpp_vtn.test").warning('said quo"ted\\')
    logging.getLogger("xmpp_vtn.test").debug("below the level")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["message"] == "said ********"
    entry = json.loads(lines[0])
    assert (entry["level"], entry["logger"], entry["message"]) == ("INFO", "xmpp_vtn.test", "handshake with ********")
    assert entry["time"].endswith("+00:00")


def test_a_bad_config_exits_2_listing_every_problem_without_a_traceback(tmp_path):
    path = write(tmp_path, 'vtn_id = "V"\nextra = 1\n[component]\njid = "vtn.example.com"\nport = 0\n')
    result = cli("run", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"xmpp-vtn run: {path}: 3 problems:",
        "  extra: unknown key; known keys: " + ", ".join(
            ("vtn_id", "store", "handlers", "push_timeout", "push_concurrency", "requested_poll_freq",
             "tune_gc", "operators", "component", "liveness", "log", "cluster", "http", "control", "quotas")),
        "  component.secret: missing; give secret, secret_file (a file holding it) or secret_env "
        "(an environment variable holding it)",
        "  component.port: must be an integer between 1 and 65535, got 0"]


# -- run -------------------------------------------------------------------------------------------

def test_run_with_nothing_listening_exits_1_within_the_budget(tmp_path):
    port = free_port()
    path = write(tmp_path, MINIMAL + f"port = {port}\n")
    started = time.monotonic()
    result = cli("run", "--config", str(path), "--connect-timeout", "1")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (f"xmpp-vtn run: connection refused at 127.0.0.1:{port}: nothing "
                                              "listens there (retried for 1 s)")
    assert time.monotonic() - started < 15          # interpreter start-up, then the 1 s budget
    assert "component-secret" not in result.stderr


def test_run_with_a_wrong_secret_says_so(prosody, tmp_path):
    path = write(tmp_path, f'''
vtn_id = "V"
[component]
jid = "{prosody.component}"
secret = "not-the-secret"
port = {prosody.component_port}
''')
    result = cli("run", "--config", str(path), "--connect-timeout", "10")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"xmpp-vtn run: handshake refused at 127.0.0.1:{prosody.component_port}: check the component secret")


async def _lines_until(stream: asyncio.StreamReader, text: str, seen: list[str], timeout: float = 20) -> None:
    async def read() -> None:
        while True:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"stream ended before {text!r}:\n" + "".join(seen))
            seen.append(line.decode())
            if text in seen[-1]:
                return
    await asyncio.wait_for(read(), timeout)


@asynccontextmanager
async def running_vtn(config: Path, secret: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``xmpp-vtn run`` on ``config`` in a process of its own, its stderr piped and the component
    secret in ``XMPP_VTN_SECRET``; killed on the way out if it is still running."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xmpp_vtn", "run", "--config", str(config), "--connect-timeout", "10",
        cwd=str(REPO), stderr=subprocess.PIPE, env={**os.environ, "XMPP_VTN_SECRET": secret})
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _cli_json(*args: str) -> dict:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "xmpp_vtn", *args, cwd=str(REPO),
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


def test_run_serves_the_example_handlers_until_sigterm_and_status_reads_the_store(prosody, tmp_path):
    # The example config as shipped, pointed at the test server's port and the example's handlers.
    text = (REPO / "examples" / "vtn.toml").read_text()
    text = text.replace("port = 5347", f"port = {prosody.component_port}")
    text = text.replace('handlers = "vtn_handlers.py"', f'handlers = "{REPO / "examples" / "vtn_handlers.py"}"')
    path = write(tmp_path, text)
    store = tmp_path / "vtn.sqlite3"
    account = prosody.register("north", "north-password")

    async def scenario() -> tuple[int, dict, str]:
        seen: list[str] = []
        async with running_vtn(path, prosody.secret) as process:
            await _lines_until(process.stderr, "serving; stop with SIGTERM", seen)
            ven = SimulatedVEN(f"{account}/oadr", "north-password", prosody.component, port=prosody.c2s_port,
                               ven_id="ven-north", ven_name="North substation")
            await ven.start()
            try:
                await ven.register()
            finally:
                await ven.stop()
            running = await _cli_json("status", "--store", str(store), "--json")   # beside the running VTN
            process.send_signal(signal.SIGTERM)
            await _lines_until(process.stderr, "stopped", seen)
            seen.append((await process.stderr.read()).decode())
            return await asyncio.wait_for(process.wait(), 15), running, "".join(seen)

    code, running, log_text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert code == 0, log_text
    assert "venID ven-north registered as reg-ven-north" in log_text          # the example's handler ran
    assert prosody.secret not in log_text
    for facts in (running, asyncio.run(_cli_json("status", "--config", str(path), "--json"))):
        [ven] = facts["vens"]
        assert (ven["ven_id"], ven["registration_id"], ven["transport_address"], ven["ven_name"]) == \
            ("ven-north", "reg-ven-north", f"{account}/oadr", "North substation")


# -- status ----------------------------------------------------------------------------------------

def _filled_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    for name in ("ven-1", "ven-2"):
        store.put_ven(VenRecord(name, f"reg-{name}", f"{name}@localhost", f"{name}@localhost/oadr",
                                ven_name=name.upper(), registered_at=T0))
    event = {**EVENT_MIN, "event_descriptor": {**EVENT_MIN["event_descriptor"], "event_id": "ev-1"},
             "active_period": {"dtstart": T0, "duration": timedelta(minutes=10),
                               "ramp_up_period": timedelta(minutes=5)}}
    store.put_event(EventRecord("ev-1", 2, event, ("ven-1", "ven-2")))
    store.mark_delivered("ven-1", [("ev-1", 2, "near")])
    store.mark_delivered("ven-2", [("ev-1", 1, "far")])
    store.set_opt("ven-1", [("ev-1", "optIn", 2)])
    store.put_document(Document("report_request", "rr-1", "ven-1", REPORT_REQUEST_FULL, "active"))
    store.put_document(Document("vtn_report_request", "ven-2\x1frr-2", "ven-2", REPORT_REQUEST_MIN, "active"))
    for message_type in ("oadrRequestReregistration", "oadrCancelReport"):
        item = store.enqueue("ven-2", "ven-2@localhost/oadr", message_type, b"<x/>")
    store.attempted(item)
    store.attempted(item)
    store.count_dropped("ven-2", "superseded", 3)
    store.count_dropped("", "given_up")
    store.set_liveness("ven-1", "online", T0)
    return store


def test_gather_reports_vens_events_subscriptions_and_owed_pushes(tmp_path):
    queued_from = datetime.now(timezone.utc).replace(microsecond=0)
    store = _filled_store(tmp_path / "vtn.sqlite3")
    queued_by = datetime.now(timezone.utc)
    facts = gather(store, now=T0 - timedelta(minutes=2))               # inside the ramp-up: near
    oldest = facts["outbox"][0]["oldest_queued_at"]
    later = gather(store, now=oldest + timedelta(minutes=3, seconds=5))
    store.close()
    ven_1, ven_2 = facts["vens"]
    assert (ven_1["state"], ven_1["last_seen"], ven_1["registration_id"]) == ("online", T0, "reg-ven-1")
    assert (ven_2["state"], ven_2["last_seen"]) == (None, None)
    [event] = facts["events"]
    assert (event["event_id"], event["status"], event["modification_number"]) == ("ev-1", "near", 2)
    assert event["next_transition"] == T0 and event["end"] == T0 + timedelta(minutes=10)
    assert event["deliveries"] == [
        {"ven_id": "ven-1", "delivered_modification": 2, "delivered_status": "near", "up_to_date": True,
         "opt_type": "optIn", "opt_modification": 2},
        {"ven_id": "ven-2", "delivered_modification": 1, "delivered_status": "far", "up_to_date": False,
         "opt_type": None, "opt_modification": None}]
    assert [(s["kind"], s["ven_id"], s["report_request_id"], s["r_ids"]) for s in facts["report_subscriptions"]] == [
        ("report_request", "ven-1", "rr-1", ["rid-volt", "rid-status"]),
        ("vtn_report_request", "ven-2", "rr-2", ["r"])]
    owed = dict(later["outbox"][0])
    assert queued_from <= owed.pop("oldest_queued_at") == oldest <= queued_by
    assert owed.pop("oldest_age_seconds") == 185.0
    assert owed == {"ven_id": "ven-2", "to": "ven-2@localhost/oadr", "count": 2, "attempts": 2, "max_attempts": 2,
                    "message_types": {"oadrCancelReport": 1, "oadrRequestReregistration": 1}}
    assert [{key: value for key, value in entry.items() if key != "last_at"} for entry in later["dropped_pushes"]] == [
        {"ven_id": None, "superseded": 0, "expired": 0, "outbox_full": 0, "given_up": 1, "refused": 0},
        {"ven_id": "ven-2", "superseded": 3, "expired": 0, "outbox_full": 0, "given_up": 0, "refused": 0}]
    assert all(queued_from <= entry["last_at"] <= queued_by for entry in later["dropped_pushes"])
    assert json.loads(to_json(facts))["events"][0]["start"] == "2026-11-23T12:00:00+00:00"
    text = render_text(facts)
    assert "  ven-1  VEN-1  reg-ven-1     ven-1@localhost/oadr  online   2026-11-23 12:00:00Z" in text
    assert "  ev-1   ven-2  mod 1 far   owed     -" in text
    assert "Owed pushes (outbox) (2)" in text
    later_text = render_text(later)
    assert "  ven-2  2      3m 05s  oadrCancelReport, oadrRequestReregistration  2" in later_text, later_text
    assert "Pushes let go unsent (outbox quota) (2)" in later_text
    assert "  (venIDs no longer registered)  0           0        0            1         0" in later_text, later_text


def test_an_empty_store_says_none_everywhere(tmp_path):
    SQLiteStore(tmp_path / "vtn.sqlite3").close()
    result = cli("status", "--store", str(tmp_path / "vtn.sqlite3"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("  none") == 5 and "VENs (0)" in result.stdout


def test_status_never_creates_or_upgrades_a_store(tmp_path):
    missing = tmp_path / "typo.sqlite3"
    result = cli("status", "--store", str(missing))
    assert (result.returncode, result.stderr.strip()) == (2, f"xmpp-vtn status: {missing}: no such store file")
    assert not missing.exists()
    (tmp_path / "empty.sqlite3").write_bytes(b"")
    with pytest.raises(StoreUnavailable, match="holds no xmpp-vtn store"):
        open_for_reading(tmp_path / "empty.sqlite3")
    with pytest.raises(StoreUnavailable, match=":memory:"):
        open_for_reading(":memory:")


def test_status_text_reads_a_store_another_process_holds_open(tmp_path):
    writer = _filled_store(tmp_path / "vtn.sqlite3")             # still open, as a running VTN keeps it
    try:
        result = cli("status", "--store", f"sqlite:///{tmp_path / 'vtn.sqlite3'}")
    finally:
        writer.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2:4] == [
        "VENs (2)", "  VEN    NAME   REGISTRATION  JID                   STATE    LAST SEEN"]


# -- validate --------------------------------------------------------------------------------------

GOOD = etree.tostring(etree.fromstring(codec.serialize("oadrDistributeEvent", {
    "request_id": "r1", "vtn_id": "VTN-1", "events": [EVENT_MIN]})), pretty_print=True).decode()


def line_of(text: str, document: str = GOOD) -> int:
    """The 1-based line of ``document`` holding ``text``: where an explanation must point."""
    return next(number for number, line in enumerate(document.splitlines(), 1) if text in line)


def test_explanations_name_the_element_and_what_was_expected():
    def problems(text: str) -> list[str]:
        verdict = explain(text.encode(), "f.xml")
        assert not verdict.valid
        return [problem.describe() for problem in verdict.problems]
    assert explain(GOOD.encode()).message_type == "oadrDistributeEvent"
    assert problems(GOOD.replace("<ei:modificationNumber>0</ei:modificationNumber>", "")) == [
        f"{line_of('<ei:eiMarketContext>')}: oadrDistributeEvent/oadrEvent/eiEvent/eventDescriptor: missing "
        "required element ei:modificationNumber before ei:eiMarketContext"]
    assert problems(GOOD.replace("<ei:modificationNumber>0<", "<ei:modificationNumber>abc<")) == [
        f"{line_of('<ei:modificationNumber>')}: oadrDistributeEvent/oadrEvent/eiEvent/eventDescriptor/modificationNumber: "
        "value 'abc' is not a valid xs:unsignedInt"]
    assert problems(GOOD.replace("<ei:vtnID>VTN-1</ei:vtnID>", "<ei:vtnID>VTN-1</ei:vtnID><ei:foo/>")) == [
        f"{line_of('<ei:vtnID>')}: oadrDistributeEvent/foo: unexpected element ei:foo; expected oadr:oadrEvent, or the end of "
        "oadrDistributeEvent"]
    assert problems(GOOD.replace(">never<", ">sometimes<")) == [
        f"{line_of('never')}: oadrDistributeEvent/oadrEvent/oadrResponseRequired: value 'sometimes' is not allowed; expected one "
        "of 'always', 'never'"]
    doctype = '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]>\n' + GOOD
    assert explain(doctype.encode()).kind == "refused"


def test_a_bare_signed_object_and_a_bare_message_are_judged_and_other_roots_refused():
    root = etree.fromstring(GOOD)
    signed = etree.tostring(root[0]).decode()
    assert explain(signed.encode()).valid and explain(signed.encode()).judged_as is None
    message = etree.tostring(root[0][0])
    verdict = explain(message, "m.xml")
    assert verdict.valid and verdict.message_type == "oadrDistributeEvent" and verdict.judged_as == "a bare message"
    assert render(verdict) == "m.xml: valid (oadrDistributeEvent, judged as a bare message)"
    for foreign in (b"<html/>", b'<oadrEvent xmlns="http://openadr.org/oadr-2.0b/2012/07"/>'):
        [problem] = explain(foreign).problems
        assert problem.message.endswith("expected oadr:oadrPayload, oadr:oadrSignedObject or a bare 2.0b "
                                        "message such as oadr:oadrDistributeEvent")


def test_validate_exits_1_and_explains_each_file(tmp_path):
    good = write(tmp_path, GOOD, "good.xml")
    bad = write(tmp_path, GOOD.replace("<ei:eventStatus>far</ei:eventStatus>", ""), "bad.xml")
    # xmlschema accepts an anyURI with spaces, libxml2 (what the VTN validates with) does not.
    spaced = write(tmp_path, GOOD.replace(">http://mc<", ">ht tp://mc<"), "spaced.xml")
    broken = write(tmp_path, GOOD.replace("</ei:vtnID>", "</ei:vtnId>"), "broken.xml")
    result = cli("validate", str(good), str(bad), str(spaced), str(broken))
    assert result.returncode == 1, result.stderr
    vtn_line = line_of("<ei:vtnID>")
    assert result.stdout.splitlines() == [
        f"{good}: valid (oadrDistributeEvent)",
        f"{bad}: invalid (oadrDistributeEvent), 1 problem",
        f"  {bad}:{line_of('<ei:eventDescriptor>')}: oadrDistributeEvent/oadrEvent/eiEvent/eventDescriptor: "
        "missing required element ei:eventStatus",
        f"{spaced}: invalid (oadrDistributeEvent), 1 problem",
        f"  {spaced}:{line_of('http://mc')}: oadrDistributeEvent/oadrEvent/eiEvent/eventDescriptor/eiMarketContext/"
        "marketContext: value 'ht tp://mc' is not a valid emix:MarketContextType",
        f"{broken}: not well-formed, 1 problem",            # only its own error, none left from the file before
        f"  {broken}:{vtn_line}: Opening and ending tag mismatch: vtnID line {vtn_line} and vtnId"]
    assert cli("validate", str(good)).returncode == 0


def test_the_quotas_table_sets_the_per_ven_limits_and_refuses_unknown_or_bad_ones(tmp_path):
    from datetime import timedelta
    from xmpp_vtn.services.quotas import Quotas
    assert load_config(write(tmp_path, MINIMAL)).quotas == Quotas()
    config = load_config(write(tmp_path, MINIMAL + '[quotas]\nopts_per_ven = 8\nrequests_per_second = 2.5\n'
                                                   'stale_report_update = 60\n'))
    assert (config.quotas.opts_per_ven, config.quotas.requests_per_second,
            config.quotas.stale_report_update) == (8, 2.5, timedelta(seconds=60))
    assert vtn_arguments(config)["quotas"] == config.quotas
    problems = errors_of(write(tmp_path, MINIMAL + '[quotas]\nopts_per_vens = 8\noutbox_per_ven = 0\n'))
    assert any(line.startswith("quotas.opts_per_vens: unknown key; did you mean opts_per_ven?") for line in problems)
    assert any(line.startswith("quotas.outbox_per_ven") for line in problems)
