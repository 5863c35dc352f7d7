"""Hostile payloads for the fuzz test: well-formed XML (anything else cannot cross an XMPP
stream; the codec tests cover it) that is wrong in every other way a VEN could make it wrong."""
from __future__ import annotations

import copy
import random
from typing import Iterator

from lxml import etree

from xmpp_vtn import codec
from payloads import CATALOGUE

NS_EI = "http://docs.oasis-open.org/ns/energyinterop/201110"
JUNK = ["", " ", "-1", "1e309", "NaN", "99999999999999999999999", "P1Y2M3DT4H5M6.7S", "2026-13-45T25:61:61Z",
        "true", "optMaybe", "\u00e9\u4e2d\U0001F600", "<&>'\"", "x" * 300, "0" * 50]


def base_documents(ven_id: str) -> list[bytes]:
    """Every message type, full and minimal, claiming ``ven_id``."""
    documents = []
    for message_type, (full, minimal) in CATALOGUE.items():
        for payload in (full, minimal):
            payload = copy.deepcopy(payload)
            if "ven_id" in payload:
                payload["ven_id"] = ven_id
            documents.append(codec.serialize(message_type, payload))
    return documents


def _elements(root: etree._Element) -> list[etree._Element]:
    return [element for element in root.iter() if isinstance(element.tag, str)]


def _set_ven_ids(root: etree._Element, value: str) -> None:
    for element in root.iter(f"{{{NS_EI}}}venID"):
        element.text = value


def mutate(document: bytes, rng: random.Random, other_ven_ids: list[str]) -> tuple[str, bytes]:
    """One mutation of ``document``: (its name, the bytes)."""
    root = etree.fromstring(document)
    elements = _elements(root)
    target = rng.choice(elements[2:] or elements)
    kind = rng.choice(["delete", "duplicate", "junk-text", "rename", "renamespace", "unknown-child",
                       "attribute", "swap", "deep", "huge-text", "spoof", "unknown-ven", "stale-ids", "wrong-root",
                       "unchanged"])
    parent = target.getparent()
    if kind == "delete" and parent is not None:
        parent.remove(target)
    elif kind == "duplicate" and parent is not None:
        parent.insert(parent.index(target), copy.deepcopy(target))
    elif kind == "junk-text":
        leaves = [e for e in elements if len(e) == 0] or elements
        rng.choice(leaves).text = rng.choice(JUNK)
    elif kind == "rename":
        target.tag = etree.QName(target).namespace and f"{{{etree.QName(target).namespace}}}bogus{rng.randrange(9)}" \
            or "bogus"
    elif kind == "renamespace":
        target.tag = f"{{urn:example:wrong}}{etree.QName(target).localname}"
    elif kind == "unknown-child":
        etree.SubElement(target, f"{{{NS_EI}}}unexpected").text = "?"
    elif kind == "attribute":
        target.set(rng.choice(["id", "foo", "{urn:x}bar"]), rng.choice(JUNK))
    elif kind == "swap" and parent is not None and len(parent) > 1:
        first, second = rng.sample(range(len(parent)), 2)
        a, b = parent[first], parent[second]
        parent.replace(a, copy.deepcopy(b))
        parent.replace(b, copy.deepcopy(a))
    elif kind == "deep":
        node = target
        for _ in range(rng.randrange(30, 60)):
            node = etree.SubElement(node, f"{{{NS_EI}}}nest")
    elif kind == "huge-text":
        target.text = "9" * rng.randrange(20_000, 60_000)
    elif kind == "spoof" and other_ven_ids:
        _set_ven_ids(root, rng.choice(other_ven_ids))
    elif kind == "unknown-ven":
        _set_ven_ids(root, f"nobody-{rng.randrange(10**6)}")
    elif kind == "stale-ids":
        for element in root.iter(f"{{{NS_EI}}}eventID", f"{{{NS_EI}}}modificationNumber",
                                 f"{{{NS_EI}}}reportRequestID", f"{{{NS_EI}}}optID"):
            element.text = rng.choice(["0", "-1", "stale", "fuzz-event", "999"])
    elif kind == "wrong-root":
        signed = root[0] if len(root) else root
        signed.clear()
        etree.SubElement(signed, f"{{{NS_EI}}}eiEvent")
    return kind, etree.tostring(root)


def hostile_payloads(count: int, ven_id: str, other_ven_ids: list[str], seed: int = 20261123
                     ) -> Iterator[tuple[str, bytes]]:
    """``count`` (mutation, document) pairs, reproducible from ``seed``."""
    rng = random.Random(seed)
    bases = base_documents(ven_id)
    for _ in range(count):
        yield mutate(rng.choice(bases), rng, other_ven_ids)
