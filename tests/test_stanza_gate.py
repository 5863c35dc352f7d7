"""The stanza gate (xmpp_vtn/runtime/stanza_gate.py): pure logic, no server.

What it must do: hand the parser every byte of a stream it accepts, unchanged, however the bytes
are cut into reads; replace each stanza it refuses by a stand-in the parser reads as that
stanza's start tag and a marker; and never guess when the premise of its counting fails.
"""
from __future__ import annotations

import logging
import random
import xml.etree.ElementTree as ET

import pytest

from xmpp_vtn.runtime.stanza_gate import REFUSED, StanzaGate

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='vtn.localhost'>")


def stanzas_parsed(stream: bytes) -> list[ET.Element]:
    """The top-level elements a stream parser finds in ``stream`` (as slixmpp reads them)."""
    parser = ET.XMLPullParser(("start", "end"))
    parser.feed(stream)
    depth, found = 0, []
    for event, element in parser.read_events():
        if event == "start":
            depth += 1
        else:
            depth -= 1
            if depth == 1:
                found.append(element)
    return found


def feed_in_pieces(gate: StanzaGate, stream: bytes, sizes: list[int]) -> bytes:
    out, position = [], 0
    for size in sizes:
        out.append(gate.feed(stream[position:position + size]))
        position += size
    out.append(gate.feed(stream[position:]))
    return b"".join(out)


def iq(body: bytes, sender: str = "ven@localhost/oadr", quote: str = '"') -> bytes:
    q = quote.encode()
    return (b"<iq type=" + q + b"set" + q + b" id=" + q + b"i1" + q + b" from=" + q + sender.encode() + q
            + b" to='vtn.localhost'>" + body + b"</iq>")


def random_element(rng: random.Random, depth: int = 0) -> ET.Element:
    """Elements with names that share prefixes with "iq", nested namesakes, attributes and text
    holding every character an escaper must take care of."""
    element = ET.Element(rng.choice(["iq", "iqx", "i", "q", "{urn:x}iq", "a"]))
    for k in range(rng.randrange(3)):
        element.set(f"k{k}", rng.choice(["", "a/>b", "<x>", "'\"", "&amp;", "iq</iq>"]))
    element.text = rng.choice([None, "", "t", "a/>b<c>", "</iq>", "&"])
    if depth < 4:
        for _ in range(rng.randrange(4)):
            child = random_element(rng, depth + 1)
            child.tail = rng.choice([None, " ", "x>y"])
            element.append(child)
    return element


def test_a_stream_it_accepts_reaches_the_parser_byte_for_byte_however_it_is_cut():
    rng = random.Random(7)
    # ElementTree escapes "<", ">", "&" and quotes as the servers do, so the stream can be counted.
    stanzas = [iq(ET.tostring(random_element(rng))) for _ in range(60)]
    stanzas += [b"<presence from='a@b/c' to='vtn.localhost'/>", b"  \n", b"<message to='x'><body>hi</body></message>"]
    rng.shuffle(stanzas)
    stream = HEADER + b"".join(stanzas) + b"</stream:stream>"
    for trial in range(40):
        sizes = [rng.randrange(1, 200) for _ in range(rng.randrange(1, 400))]
        gate = StanzaGate(lambda sender, elements: True)
        assert feed_in_pieces(gate, stream, sizes) == stream, trial
        assert gate.refused == 0


def test_a_stanza_over_the_limit_is_replaced_by_its_start_tag_and_a_marker():
    asked = []

    def accept(sender, elements):
        asked.append((sender, elements))
        return elements <= 10

    big = iq(b"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'>" + b"<a/>" * 60_000 + b"</oadrPayload>",
             sender="m&amp;m@localhost/r")
    small = iq(b"<a><b/></a>")
    stream = HEADER + small + big + small
    gate = StanzaGate(accept, check_above=5)
    out = feed_in_pieces(gate, stream, [65536] * 3)
    found = stanzas_parsed(out + b"</stream:stream>")
    assert [len(list(element.iter())) for element in found] == [3, 2, 3]
    refused = found[1]
    assert refused.get("id") == "i1" and refused.get("from") == "m&m@localhost/r"
    assert refused[0].tag == REFUSED
    assert refused[0].get("elements") == "60002"                # iq, oadrPayload and 60,000 a
    assert refused[0].get("bytes") == str(len(big))
    assert gate.refused == 1 and gate.refused_bytes == len(big)
    # Asked about the refused stanza only (the small ones hold no more than check_above), with the
    # sender's JID unescaped, and not once per element.
    assert {sender for sender, _ in asked} == {"m&m@localhost/r"}
    assert len(asked) <= 5


def test_a_refused_stanza_is_let_go_as_it_arrives_not_held_whole():
    gate = StanzaGate(lambda sender, elements: elements < 100)
    gate.feed(HEADER + b"<iq id='x'>")
    for _ in range(100):
        assert gate.feed(b"<a/>" * 1000) == b""
        assert len(gate._buffer) < 8 * 1024                     # not the 400 KB sent so far
    out = gate.feed(b"</iq><iq id='y'/>")
    assert out == (b"<iq id='x'><refused-unread xmlns=\"urn:xmpp-vtn:gate\" elements=\"100001\" bytes=\""
                   + str(len(b"<iq id='x'>") + 400_000 + 5).encode() + b"\" /></iq><iq id='y'/>")


def test_a_stanza_larger_than_max_bytes_is_refused_whatever_its_element_count():
    told = []
    gate = StanzaGate(lambda sender, elements: True, max_bytes=10_000,
                      on_oversized=lambda sender, size: told.append((sender, size)))
    text = b"x" * 20_000
    stream = HEADER + iq(b"<body>" + text + b"</body>") + iq(b"<body>ok</body>")
    found = stanzas_parsed(feed_in_pieces(gate, stream, [len(HEADER)] + [4096] * 3))
    assert found[0][0].tag == REFUSED and found[1][0].text == "ok"
    assert len(told) == 1 and told[0][0] == "ven@localhost/oadr" and told[0][1] > 10_000   # once, as it went over


def test_nested_namesakes_and_names_that_start_alike_end_the_stanza_where_the_parser_does():
    stream = HEADER + b"<iq id='1'><iq><iq/></iq><iqx></iqx><iq\n></iq\n></iq><iq id='2'></iq >"
    gate = StanzaGate(lambda sender, elements: elements < 5, check_above=0)
    found = stanzas_parsed(feed_in_pieces(gate, stream, [len(HEADER)] + [3] * 30))
    assert [element.get("id") for element in found] == ["1", "2"]
    assert found[0][0].tag == REFUSED and found[0][0].get("elements") == "5"
    assert len(found[1]) == 0


def test_attribute_values_holding_a_gt_sign_are_counted_tag_by_tag():
    # What ejabberd forwards: ">" unescaped in attribute values, escaped in text (and text with
    # it unescaped, which XML allows too).
    odd = b"<x a='1/>2' b=\"iq>\" c='/'>a/&gt;b a/>b</x><y d='>'/><iq e='/iq>'/>"
    stream = HEADER + iq(odd) + iq(b"<a/>" * 40 + odd) + iq(odd)
    gate = StanzaGate(lambda sender, elements: elements <= 10)
    found = stanzas_parsed(feed_in_pieces(gate, stream, [len(HEADER) + 5] + [17] * 40))
    assert gate.counting
    assert [len(element) for element in found] == [3, 1, 3]
    assert found[1][0].tag == REFUSED and found[1][0].get("elements") == str(1 + 40 + 3)
    assert ET.tostring(found[0]) == ET.tostring(stanzas_parsed(stream)[0])


@pytest.mark.parametrize("stanza", [
    b"<message><!-- <iq> --><body>c</body></message>",              # a comment
    b"<message><![CDATA[</message>]]></message>",                   # a CDATA section
])
def test_a_stream_it_cannot_count_goes_to_the_parser_untouched(stanza, caplog):
    stream = HEADER + stanza + iq(b"<a/>" * 50)
    gate = StanzaGate(lambda sender, elements: elements < 10)
    with caplog.at_level(logging.WARNING, logger="xmpp_vtn.component"):
        out = feed_in_pieces(gate, stream, [len(HEADER) + 7])
    assert out == stream                        # the large iq after it too: checked after parsing
    assert gate.refused == 0
    assert "stops counting" in caplog.text


def test_losing_count_after_letting_bytes_go_restarts_the_stream_and_feeds_nothing_more():
    lost = []
    gate = StanzaGate(lambda sender, elements: elements < 10, on_lost=lost.append)
    assert gate.feed(HEADER + b"<iq id='z'>" + b"<a/>" * 100) == HEADER
    assert gate.feed(b"<body><!-- x --></body><a/>" * 10) == b""
    assert lost and gate.feed(b"</iq><iq id='w'/>") == b""
    gate.reset()                                # the next connection starts clean
    assert gate.feed(HEADER + b"<iq id='w'/>") == HEADER + b"<iq id='w'/>"


def test_the_stream_header_and_its_end_pass_as_they_are():
    gate = StanzaGate(lambda sender, elements: False)
    assert gate.feed(HEADER[:30]) == b""
    assert gate.feed(HEADER[30:]) == HEADER
    assert gate.feed(b" ") == b" "
    assert gate.feed(b"</stream:stream>") == b"</stream:stream>"


def test_refusing_mid_stanza_keeps_the_count_whatever_the_reads():
    # A refused stanza is let go as it is counted; its end and its size must come out the same
    # for any cut of the reads, with namesakes inside it.
    body = b"<iq><a/></iq><iqx/>" * 300
    stanza = b"<iq id='r'>" + body + b"</iq>"
    stream = HEADER + stanza + b"<iq id='next'><b/></iq>"
    rng = random.Random(3)
    for trial in range(60):
        gate = StanzaGate(lambda sender, elements: elements < 50)
        sizes = [rng.randrange(1, 300) for _ in range(rng.randrange(1, 100))]
        found = stanzas_parsed(feed_in_pieces(gate, stream, sizes))
        assert [element.get("id") for element in found] == ["r", "next"], trial
        assert found[0][0].get("elements") == str(1 + 900) and found[0][0].get("bytes") == str(len(stanza)), trial


def test_claimed_stanzas_are_taken_whole_and_everything_is_handled_in_the_order_it_came():
    # The iqs a claim takes never reach the parser; those it declines do, and every stanza
    # reaches one or the other in the order it came, whatever the cut of the reads (an empty
    # iq at the very end of a read included).
    stanzas = [b"<iq type='result' id='r1'/>", b"<message><body>m1</body></message>",
               b"<iq type='set' id='s1'><q/></iq>", b"<iq type='result' id='r2'/>",
               b"<presence/>", b"<iq type='get' id='g1'><ping/></iq>", b"<iq type='result' id='r3'/>"]
    declined = stanzas[5]
    stream = HEADER + b"".join(stanzas)
    rng = random.Random(5)
    for trial in range(200):
        events: list[tuple[str, bytes]] = []

        def claim(stanza: bytes, head: int, elements: int) -> bool:
            assert head == stanza.index(b">") + 1 and elements == stanza.count(b"<") - stanza.count(b"</")
            events.append(("offered", stanza))
            return stanza != declined

        gate = StanzaGate(lambda sender, elements: True, claim=claim,
                          flush=lambda data: events.append(("parsed", data)))
        position = 0
        for size in [len(HEADER)] + [rng.randrange(1, 90) for _ in range(60)]:
            events.append(("parsed", gate.feed(stream[position:position + size])))
            position += size
        handled = []
        for kind, data in events:
            if kind == "offered":
                if data != declined:
                    handled.append(data)
                continue
            data = data.removeprefix(HEADER)
            while data:                       # the parser only ever gets whole stanzas
                whole = next(stanza for stanza in stanzas if data.startswith(stanza))
                handled.append(whole)
                data = data[len(whole):]
        assert handled == stanzas, trial
        assert [data for kind, data in events if kind == "offered"] == [s for s in stanzas if s.startswith(b"<iq")]
