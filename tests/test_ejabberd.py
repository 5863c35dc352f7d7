"""The VTN on a real ejabberd (23.01, the Debian package) instead of Prosody, and how ejabberd routes
what is addressed to a component domain that several connections serve.

What these tests pin (the why is in xmpp_vtn/ejabberd.py's docstring):

* ejabberd accepts a second component connection for the same domain; Prosody refuses it.
* Which connection receives a stanza addressed to the component is decided by ``domain_balancing``
  from that stanza alone, never by who sent the iq it answers: a VEN's acknowledgement of a push
  reaches the connection the VEN's own traffic goes to, whichever connection pushed and whether the
  push came from the bare domain or from a resource of it.
  - No ``domain_balancing`` entry (the session fixture): each stanza, at random.
  - ``bare_source`` with ``component_number`` 2: each VEN sticks to one connection, both ways; a
    third connection is accepted and gets nothing; when a connection goes, its VENs' stanzas are
    dropped without an error until a new connection takes the slot.
  - A ``type`` without ``component_number`` breaks every component handshake in 23.01.
* A component stanza without ``from`` costs the component its stream (``improper-addressing``).
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from slixmpp import JID, ComponentXMPP
from slixmpp.exceptions import IqTimeout

from xmpp_vtn import StreamFailed, codec
from xmpp_vtn.runtime.component import Answer, OadrComponent
from xmpp_vtn.testing.localserver import listening
from xmpp_vtn.testing.ejabberd import LOOPBACK, EjabberdServer, descendants
from xmpp_vtn.testing.clock import ManualScheduler
from xmpp_vtn.runtime.stanzas import attach_payload, wait_for_session
from xmpp_vtn.testing.ven import SimulatedVEN
from xmpp_scene import PASSWORD, make_vtn, next_event, run, scene

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
#: A schema-valid push that SimulatedVEN acknowledges and answers with nothing more.
PUSH = codec.serialize("oadrResponse", {"response": {"response_code": 200, "response_description": "OK",
                                                     "request_id": None}, "ven_id": "routing"})


# -- the private server itself ----------------------------------------------------------------------

def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_private_server_listens_on_loopback_only_without_distribution_restarts_and_stops_by_pid():
    with EjabberdServer() as server:
        assert server.started_in is not None and server.started_in < 10
        family = [server.pid, *descendants(server.pid)]
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in family}
        assert "beam.smp" in names and "epmd" not in names
        arguments = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        assert b"-name" not in arguments and b"-sname" not in arguments     # nonode@nohost: no distribution
        assert listening(family) == {(LOOPBACK, server.c2s_port), (LOOPBACK, server.component_port)}

        assert server.register("restart", "pw") == f"restart@{server.domain}"
        assert server.register("restart", "pw") == f"restart@{server.domain}"   # same password: fine
        with pytest.raises(Exception, match="another password"):
            server.register("restart", "other")
        ports = (server.c2s_port, server.component_port)
        server.stop()
        assert not any(alive(pid) for pid in family)
        server.start()
        first_pid = server.pid
        server.start()                                  # already running: nothing happens
        assert server.pid == first_pid and first_pid not in family
        assert (server.c2s_port, server.component_port) == ports
        assert server.check_password("restart", "pw")   # accounts survive a restart (Mnesia on disk)
        family = [server.pid, *descendants(server.pid)]
    assert not any(alive(pid) for pid in family)


def test_a_balancing_type_without_component_number_breaks_every_component_handshake():
    with pytest.raises(ValueError, match="together"):
        EjabberdServer(domain_balancing="bare_source")
    server = EjabberdServer(domain_balancing="bare_source", component_number=2)
    server.component_number = None              # the config the documentation allows, written anyway

    async def scenario(server: EjabberdServer) -> list[str]:
        component = ComponentXMPP(server.component, server.secret, LOOPBACK, server.component_port)
        outcome = []
        component.add_event_handler("session_start", lambda _: outcome.append("session"))
        closed = next_event(component, "disconnected")
        component.connect()
        await closed                             # the server drops the connection after the handshake
        return outcome

    try:
        assert run(scenario(server.start()), 15) == []
        server.stop()                            # flushes the log
        assert "{badkey,component_number}" in server.log.read_text()
    finally:
        server.close()


# -- the VTN on ejabberd ----------------------------------------------------------------------------

def test_ven_registers_and_a_pushed_event_is_answered_once(ejabberd):
    async def scenario():
        created, answers = [], []
        answered = asyncio.get_running_loop().create_future()

        def on_answer(*args) -> None:
            answers.append(args)
            answered.done() or answered.set_result(None)

        handlers = {"on_created_event": created.append}
        async with scene(ejabberd, register=True, handlers=handlers, scheduler=ManualScheduler(T0)) as (vtn, [ven]):
            [record] = vtn.vens()
            event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level",
                                     [{"dtstart": T0 + 10 * MIN, "duration": 5 * MIN, "signal_payload": 1.0}],
                                     callback=on_answer)
            push = await ven.next_push("oadrDistributeEvent")
            await answered
            await vtn.courier.idle()
            return ven.ven_id, ven.full_jid, record, event_id, push, created, answers

    ven_id, full_jid, record, event_id, push, created, answers = run(scenario())
    assert record.ven_id == ven_id and record.transport_address == full_jid      # registered over ejabberd
    assert push.sender == "vtn.localhost"
    assert [event["event_descriptor"]["event_id"] for event in push.payload["events"]] == [event_id]
    assert len(created) == 1 and created[0]["event_responses"][0]["event_id"] == event_id
    assert answers == [(ven_id, event_id, "optIn")]


def test_a_second_component_connection_is_accepted_by_ejabberd_and_refused_by_prosody(ejabberd, prosody):
    async def scenario():
        first, second = make_vtn(ejabberd), make_vtn(ejabberd)
        await first.run()
        try:
            await second.run()
            both = first.connected and second.connected
            await second.stop()
        finally:
            await first.stop()
        alone, refused = make_vtn(prosody), make_vtn(prosody)
        await alone.run()
        try:
            with pytest.raises(StreamFailed, match="conflict"):
                await refused.run()
        finally:
            await refused.stop()
            await alone.stop()
        return both

    assert run(scenario()) is True


def test_a_component_stanza_without_from_costs_the_component_its_stream(ejabberd):
    """Why every stanza OadrComponent sends names ``from`` (pushes, pings, replies, errors)."""
    async def scenario():
        component = ComponentXMPP(ejabberd.component, ejabberd.secret, LOOPBACK, ejabberd.component_port)
        component.connect()
        await wait_for_session(component)
        errors = []
        component.add_event_handler("stream_error", errors.append)
        closed = next_event(component, "disconnected")
        iq = component.make_iq_get(ito=f"nobody@{ejabberd.domain}/x")     # no ifrom
        iq.enable("ping")
        component.send(iq)
        await closed
        return errors

    [error] = run(scenario())
    assert error["condition"] == "improper-addressing" and "from" in error["text"]


def test_the_fixtures_c2s_limit_passes_the_largest_legitimate_message_and_cuts_off_a_larger_one(ejabberd):
    """c2s max_stanza_size as docs/servers.md recommends (256 KiB): the largest message the quotas
    let a VEN send (one offered report of readings_per_report readings, about 168 KB) reaches the
    VTN; a stanza over the limit costs its sender the connection and never reaches the VTN."""
    from hostile_attacker import _empty_elements, _offer
    from xmpp_vtn.services.quotas import Quotas
    from xmpp_vtn.testing.ejabberd import C2S_STANZA_SIZE_LIMIT

    async def scenario():
        async with scene(ejabberd, vens=2, register=True, ping_interval=None) as (vtn, [ven, sender]):
            offer = {"request_id": "r", "ven_id": ven.ven_id, "reports": [_offer(0, Quotas().readings_per_report)]}
            largest = len(codec.serialize("oadrRegisterReport", offer))
            answer = await ven.request("oadrRegisterReport", offer)
            errors, closed = [], next_event(sender.xmpp, "disconnected")
            sender.xmpp.add_event_handler("stream_error", errors.append)
            oversized = asyncio.ensure_future(sender.request_raw(_empty_elements(80_000)))
            # Whichever comes first: the server cutting the sender off, or the VTN's answer.
            await asyncio.wait({closed, oversized}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            answered = oversized.done()                 # an answer or an iq error: the VTN saw it
            oversized.cancel()
            await asyncio.gather(oversized, return_exceptions=True)
            return largest, answer, closed.done(), answered, errors, dict(vtn.quota_guard.counters)

    largest, answer, closed, answered, errors, counters = run(scenario())
    assert largest < C2S_STANZA_SIZE_LIMIT < len(_empty_elements(80_000))
    assert answer[0] == "oadrRegisteredReport" and answer[1]["response"]["response_code"] == 200
    assert closed and not answered, "the oversized stanza reached the VTN"
    assert [error["condition"] for error in errors] == ["policy-violation"]
    assert counters == {}                          # the VTN never saw the oversized stanza


# -- which connection gets what -------------------------------------------------------------------

class Arrivals:
    """Stanzas as the components received them: (connection name, sender's bare JID)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._waiters: list[tuple[int, asyncio.Future]] = []

    def add(self, connection: str, sender: str) -> None:
        self.seen.append((connection, JID(sender).bare))
        for count, waiter in self._waiters:
            if len(self.seen) >= count and not waiter.done():
                waiter.set_result(None)

    async def wait(self, count: int, timeout: float = 10.0) -> None:
        if len(self.seen) < count:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((count, waiter))
            await asyncio.wait_for(waiter, timeout)

    def connections_of(self, sender: str) -> set[str]:
        return {connection for connection, who in self.seen if who == sender}

    def connections(self) -> set[str]:
        return {connection for connection, _ in self.seen}


async def connect(server, name: str, requests: Arrivals, answers: Arrivals) -> OadrComponent:
    """One of our component connections: it answers every request with an empty result and notes it;
    every answer it receives to an iq it did not wait for goes to ``answers``."""
    async def on_request(sender: str, addressed: str, data: bytes) -> bytes | None:
        requests.add(name, sender)
        return None

    def on_foreign_answer(answer: Answer) -> None:
        answers.add(name, answer.sender)

    component = OadrComponent(server.component, server.secret, LOOPBACK, server.component_port, on_request,
                              on_foreign_answer=on_foreign_answer)
    await component.start(timeout=10)
    return component


def push(component: OadrComponent, to: str, sender: str) -> None:
    """A push as OadrComponent.push sends it, but without waiting: its acknowledgement is an
    answer nobody waits for, so whichever connection receives it reports it as foreign."""
    iq = component.xmpp.make_iq_set(ito=to, ifrom=sender)
    attach_payload(iq, PUSH)
    component.xmpp.send(iq)


async def start_vens(server, names: list[str]) -> list[SimulatedVEN]:
    jids = server.register_many(names, PASSWORD)
    vens = [SimulatedVEN(f"{jid}/oadr", PASSWORD, server.component, port=server.c2s_port, announce_presence=False)
            for jid in jids]
    return list(await asyncio.gather(*(ven.start() for ven in vens)))


async def poll(ven: SimulatedVEN) -> None:
    assert await ven.request("oadrPoll", {"ven_id": "routing"}) is None      # the empty result came back


def test_without_domain_balancing_each_stanza_goes_to_a_random_connection(ejabberd):
    async def scenario():
        requests, answers = Arrivals(), Arrivals()
        a = await connect(ejabberd, "a", requests, answers)
        b = await connect(ejabberd, "b", requests, answers)
        vens = await start_vens(ejabberd, [f"random{n}" for n in range(3)])
        try:
            await asyncio.gather(*(poll(ven) for ven in vens for _ in range(10)))
            await requests.wait(30)
            for ven in vens:
                for n in range(10):
                    push(a, ven.full_jid, ejabberd.component if n % 2 else f"{ejabberd.component}/EiEvent")
            await answers.wait(30)
        finally:
            await asyncio.gather(*(ven.stop() for ven in vens))
            await a.stop()
            await b.stop()
        return [ven.jid.split("/")[0] for ven in vens], requests, answers

    vens, requests, answers = run(scenario())
    assert requests.connections() == {"a", "b"}
    # Stanza by stanza, not VEN by VEN: some VEN's requests were split (all 3 unsplit: p = 2**-27).
    assert any(requests.connections_of(ven) == {"a", "b"} for ven in vens)
    # Every push came from connection a, yet their acknowledgements went to both.
    assert answers.connections() == {"a", "b"}


def test_bare_source_with_two_slots_sticks_each_ven_to_one_connection_whoever_pushes():
    server = EjabberdServer(domain_balancing="bare_source", component_number=2)
    names = [f"ven{n}" for n in range(8)]    # fixed names: ejabberd's hash (phash2) puts them on both slots

    async def scenario():
        requests, answers = Arrivals(), Arrivals()
        a = await connect(server, "a", requests, answers)         # takes slot 1
        b = await connect(server, "b", requests, answers)         # takes slot 2
        c = await connect(server, "c", requests, answers)         # accepted, no slot left
        vens = await start_vens(server, names)
        owners: dict[str, str] = {}
        try:
            await asyncio.gather(*(poll(ven) for ven in vens for _ in range(3)))
            await requests.wait(24)
            for ven in vens:
                push(a, ven.full_jid, server.component)                 # from the bare domain
                push(b, ven.full_jid, f"{server.component}/EiEvent")    # from a resource
            await answers.wait(16)
            first_requests, first_answers = Arrivals(), Arrivals()
            first_requests.seen, first_answers.seen = list(requests.seen), list(answers.seen)

            # b goes: its slot stays reserved, and what hashes to it is dropped without an error.
            await b.stop()
            for ven in vens:
                ven.request_timeout = 1.0
            outcomes = await asyncio.gather(*(poll(ven) for ven in vens), return_exceptions=True)
            # The next connection takes the free slot (c, connected all along, does not).
            b2 = await connect(server, "b2", requests, answers)
            await asyncio.gather(*(poll(ven) for ven in vens))
            await b2.stop()
        finally:
            await asyncio.gather(*(ven.stop() for ven in vens))
            for component in (a, b, c):
                await component.stop()
        return [ven.jid.split("/")[0] for ven in vens], first_requests, first_answers, outcomes, requests

    try:
        server.start()
        vens, requests, answers, outcomes, later = run(scenario())
    finally:
        server.close()
    owner = {}
    for ven in vens:
        [owner[ven]] = requests.connections_of(ven)         # all of one VEN's requests: one connection
    assert set(owner.values()) == {"a", "b"}                 # and the VENs are spread over both slots
    for ven in vens:
        # Pushed by a (from the bare domain) and by b (from a resource): acknowledged to the owner.
        assert answers.connections_of(ven) == {owner[ven]}
    assert "c" not in requests.connections() | answers.connections()
    for ven, outcome in zip(vens, outcomes):
        if owner[ven] == "a":
            assert outcome is None
        else:
            assert isinstance(outcome, IqTimeout)           # dropped: no error came back
    after = later.seen[len(requests.seen):]
    assert {(connection, ven) for connection, ven in after if connection != "a"} == \
        {("b2", ven) for ven in vens if owner[ven] == "b"}
