"""The stanza helpers write what ElementTree and slixmpp would, for the elements the stream gives."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from lxml import etree

from xmpp_vtn import codec
from xmpp_vtn.runtime.stanzas import element_bytes, raw_iq, too_deep
from payloads import CATALOGUE


def canonical(data: bytes) -> tuple:
    """The document's information, whatever prefixes it uses: names with their namespaces,
    attributes, text and tails, in order."""
    def shape(element) -> tuple:
        return (element.tag, sorted(element.attrib.items()), element.text or "", element.tail or "",
                [shape(child) for child in element if isinstance(child.tag, str)])
    return shape(etree.fromstring(data))


def as_received(document: bytes) -> ET.Element:
    """``document`` inside an iq, parsed the way slixmpp's stream parser parses it."""
    body = document[document.index(b"?>") + 2:] if document.startswith(b"<?xml") else document
    iq = ET.fromstring(b"<iq xmlns='jabber:component:accept' type='set' id='1'>" + body + b"\n  </iq>")
    return iq[0]


@pytest.mark.parametrize("message_type", sorted(CATALOGUE))
def test_every_message_received_is_written_back_as_elementtree_would(message_type):
    element = as_received(codec.serialize(message_type, CATALOGUE[message_type][0]))
    written = element_bytes(element)
    assert canonical(written) == canonical(ET.tostring(element).strip())
    assert codec.parse(written)[0] == message_type


def test_awkward_text_and_attributes_survive():
    element = ET.fromstring("<a xmlns='urn:x' xmlns:y='urn:y' y:k='&quot;q&apos; &amp; &lt;'>t &amp; &lt;<b>&gt;</b>tail"
                            "<!-- c --><c y:z='\u00e9\n'/></a>")
    assert canonical(element_bytes(element)) == canonical(ET.tostring(element))


def test_raw_iq_escapes_its_attributes_and_drops_the_declaration():
    stanza = raw_iq("set", "a'b\"", "x&y@z/r", "vtn.localhost", b"<?xml version='1.0'?>\n<p/>")
    element = ET.fromstring(stanza)
    assert (element.get("id"), element.get("to"), element.get("from")) == ("a'b\"", "x&y@z/r", "vtn.localhost")
    assert [child.tag for child in element] == ["p"] and b"<?xml" not in stanza


def test_depth_is_counted_only_for_stanzas_with_enough_elements():
    shallow = ET.fromstring("<a>" + "<b/>" * 100 + "</a>")
    deep = ET.fromstring("<a>" * 70 + "</a>" * 70)
    assert not too_deep(shallow) and too_deep(deep) and not too_deep(deep, limit=70)
