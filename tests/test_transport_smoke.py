"""Real parts: a slixmpp client and a slixmpp component exchange an OpenADR payload through
a real Prosody on loopback, the wire DESIGN.md fixes (iq set carrying oadrPayload, the answer
in the iq result)."""
from __future__ import annotations

import asyncio
import socket
import ssl
import xml.etree.ElementTree as ET

from slixmpp import ClientXMPP, ComponentXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from xmpp_vtn import codec
from xmpp_vtn.testing.localserver import listening
from xmpp_vtn.testing.prosody import LOOPBACK, ProsodyServer, is_running
from xmpp_vtn.schema import NS_OADR

PAYLOAD = f"{{{NS_OADR}}}oadrPayload"
SHARED_SSL = ssl.create_default_context()


def plain_client(jid: str, password: str) -> ClientXMPP:
    """A client for the test server: no TLS, PLAIN over loopback, one shared SSL context."""
    client = ClientXMPP(jid, password, sasl_mech="PLAIN",
                        plugin_config={"feature_mechanisms": {"unencrypted_plain": True}})
    client.enable_direct_tls = False
    client.enable_starttls = False
    client.enable_plaintext = True
    client.ssl_context = SHARED_SSL
    return client


async def _ready(xmpp, event: str) -> None:
    """Wait for ``event``, failing fast on authentication or stream errors instead of hanging."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    xmpp.add_event_handler(event, lambda *_: done.done() or done.set_result(True))
    for failure in ("failed_auth", "stream_error", "connection_failed"):
        xmpp.add_event_handler(failure, lambda e, f=failure: done.done() or done.set_exception(
            RuntimeError(f"{f}: {e}")))
    await asyncio.wait_for(done, 10)


async def _poll_round_trip(server: ProsodyServer, user: str) -> tuple[str, dict, str]:
    component = ComponentXMPP(server.component, server.secret, LOOPBACK, server.component_port)
    seen = {}

    def answer(iq) -> None:
        data = ET.tostring(iq.xml.find(PAYLOAD))
        message_type, payload = codec.parse(data)
        seen["sender"] = str(iq["from"])
        reply = iq.reply()
        reply.append(ET.fromstring(codec.serialize("oadrResponse", {
            "response": {"response_code": 200, "response_description": "OK", "request_id": None},
            "ven_id": payload["ven_id"]})))
        reply.send()

    component.register_handler(Callback("oadr", MatchXPath(f"{{jabber:component:accept}}iq/{PAYLOAD}"), answer))
    client = plain_client(f"{user}@{server.domain}/oadr", "pw")
    try:
        component.connect()
        await _ready(component, "session_start")
        client.connect(LOOPBACK, server.c2s_port)
        await _ready(client, "session_start")
        iq = client.make_iq_set(ito=server.component)
        iq.append(ET.fromstring(codec.serialize("oadrPoll", {"ven_id": "00123"})))
        result = await iq.send(timeout=10)
        message_type, payload = codec.parse(ET.tostring(result.xml.find(PAYLOAD)))
        return message_type, payload, seen["sender"]
    finally:
        await client.disconnect()
        await component.disconnect()


def test_oadr_payload_round_trip_through_prosody(prosody):
    prosody.register("smoke", "pw")
    message_type, payload, sender = asyncio.run(_poll_round_trip(prosody, "smoke"))
    assert message_type == "oadrResponse"
    assert payload == {"response": {"response_code": 200, "response_description": "OK", "request_id": None},
                       "ven_id": "00123"}
    assert sender == f"smoke@{prosody.domain}/oadr"  # the server authenticated the VEN's full JID


def test_private_server_restarts_on_the_same_ports_and_stops_by_pid():
    with ProsodyServer() as server:
        server.register("restart", "pw")
        first_pid, ports = server.pid, (server.c2s_port, server.component_port)
        server.stop()
        assert not is_running(first_pid)
        server.start()
        assert (server.c2s_port, server.component_port) == ports and server.pid != first_pid
        assert asyncio.run(_poll_round_trip(server, "restart"))[0] == "oadrResponse"  # accounts survive
        second_pid = server.pid
    assert not is_running(second_pid)


def test_a_port_taken_before_prosody_binds_it_is_replaced_not_shared():
    """free_port() is only a guess: a port another process takes before Prosody binds it must not
    leave clients talking to that other process."""
    server = ProsodyServer()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((LOOPBACK, server.component_port))
    squatter.listen()
    taken = server.component_port
    try:
        with server:
            assert server.component_port != taken
            assert {port for _, port in listening([server.process.pid])} >= {server.c2s_port, server.component_port}
    finally:
        squatter.close()
