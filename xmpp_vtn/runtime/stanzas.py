"""XMPP pieces shared by the VTN component and the simulated VEN: the oadrPayload stanza, sending
payload bytes verbatim, the depth guard, and waiting for a session without hanging on failures."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Callable

from slixmpp import Iq
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.tostring import tostring

from ..schema import NS_OADR
from .stanza_gate import REFUSED

OADR_FEATURE = "http://openadr.org/openadr2"
SERVICES_NODE = "http://openadr.org/openadr2#services"
SERVICE_NODE_PREFIX = "http://openadr.org/OpenADR2/"
SERVICES = ("EiEvent", "EiReport", "EiOpt", "EiRegisterParty", "OadrPoll")


class OadrPayload(ElementBase):
    """``<oadrPayload xmlns="http://openadr.org/oadr-2.0b/2012/07">`` as the direct child of an iq."""

    name = "oadrPayload"
    namespace = NS_OADR
    plugin_attrib = "oadr"
    interfaces: set[str] = set()


# Registered once, at import, as slixmpp's own plugins do.
register_stanza_plugin(Iq, OadrPayload)


def payload_bytes(iq: Iq) -> bytes | None:
    """The iq's oadrPayload as a standalone XML document, or None when it carries none."""
    element = iq.xml.find(f"{{{NS_OADR}}}oadrPayload")
    return None if element is None else element_bytes(element)


def element_bytes(root: ET.Element) -> bytes:
    """``root`` (an element slixmpp's parser made) as a standalone UTF-8 document, its tail left out.

    What ``ET.tostring`` writes, less its cost: ElementTree serializes through a text stream one
    small write at a time, which was a large share of handling one OpenADR request. Namespaces
    are declared once, on the root, with generated prefixes (as ElementTree does).
    """
    used: dict[str, str] = {}
    parts: list[str] = []
    append = parts.append

    def write(element: ET.Element) -> None:
        namespace, tag = _qualified(element.tag)
        if namespace:
            used[namespace] = tag[:tag.index(":")]
        append("<" + tag)
        for key, value in element.attrib.items():
            namespace, key = _qualified(key)
            if namespace:
                used[namespace] = key[:key.index(":")]
            append(f" {key}={attribute_value(value)}")
        append(">")
        if element.text:
            append(_text(element.text))
        for child in element:
            if isinstance(child.tag, str):              # not a comment or processing instruction
                write(child)
            if child.tail:
                append(_text(child.tail))
        append(f"</{tag}>")

    write(root)
    parts[0] += "".join(f" xmlns:{prefix}={attribute_value(namespace)}" for namespace, prefix in used.items())
    return "".join(parts).encode("utf-8")


# ``{namespace}local`` -> (namespace, "prefix:local"): the same few names recur in every payload.
# Prefixes are per process; bounded, so that made-up namespaces cannot grow it without end.
_QUALIFIED: dict[str, tuple[str, str]] = {}
_PREFIXES: dict[str, str] = {}
_MAX_NAMES = 2048


def _qualified(tag: str) -> tuple[str, str]:
    found = _QUALIFIED.get(tag)
    if found is not None:
        return found
    if tag[:1] != "{":
        return "", tag
    namespace, local = tag[1:].split("}", 1)
    prefix = _PREFIXES.get(namespace)
    if prefix is None:
        prefix = f"ns{len(_PREFIXES)}"
        if len(_PREFIXES) < _MAX_NAMES:
            _PREFIXES[namespace] = prefix
        else:                                   # past the bound: a prefix of this document's own
            prefix = f"nx{abs(hash(namespace))}"
    found = (namespace, f"{prefix}:{local}")
    if len(_QUALIFIED) < _MAX_NAMES:
        _QUALIFIED[tag] = found
    return found


def _text(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


_ATTRIBUTE_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                    "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def attribute_value(value: str) -> str:
    """``value`` quoted and escaped for an XML attribute: ``attribute_value('a"b') == '"a&quot;b"'``."""
    return '"' + value.translate(_ATTRIBUTE_ESCAPES) + '"'


def attach_payload(iq: Iq, document: bytes) -> Iq:
    """Send ``document`` (a serialized oadrPayload) as the child of ``iq``.

    The bytes go out as they are (see :func:`send_payloads_raw`): turning them into an
    ElementTree for slixmpp to serialize again, element by element in Python, was the largest
    single cost of a push.
    """
    text = document.decode("utf-8") if isinstance(document, bytes) else document
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2:].lstrip()
    iq.oadr_document = text
    return iq


def without_declaration(document: bytes) -> bytes:
    """``document`` without its ``<?xml ...?>`` declaration, to go inside a stanza."""
    if document.startswith(b"<?xml"):
        return document[document.index(b"?>") + 2:].lstrip()
    return document


def raw_iq(kind: str, iq_id: str, to: str, sender: str, document: bytes | None = None) -> bytes:
    """The bytes of ``<iq type=kind id to from>document</iq>`` on a component stream (whose
    default namespace the iq takes), attribute values escaped; ``document`` without its XML
    declaration. The stanza slixmpp would write, without building a stanza object for it.

    >>> raw_iq("result", "a1", "ven@grid/oadr", "vtn.grid")
    b'<iq type="result" id="a1" to="ven@grid/oadr" from="vtn.grid" />'
    """
    head = f'<iq type="{kind}" id={attribute_value(iq_id)} to={attribute_value(to)} from={attribute_value(sender)}'.encode()
    if not document:
        return head + b" />"
    return head + b">" + without_declaration(document) + b"</iq>"


def raw_iq_error(iq_id: str, to: str, sender: str, error_type: str, condition: str, text: str) -> bytes:
    """The bytes of an iq error with a stanza-error ``condition`` and ``text`` (both escaped), as
    :func:`raw_iq` writes a result: refusing a flood must cost less than serving it.

    >>> raw_iq_error("a1", "ven@grid/oadr", "vtn.grid", "wait", "resource-constraint", "slow down")[:60]
    b'<iq type="error" id="a1" to="ven@grid/oadr" from="vtn.grid">'
    """
    stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
    body = (f'<error type={attribute_value(error_type)}><{condition} xmlns="{stanzas}" />'
            f'<text xmlns="{stanzas}">{_text(text)}</text></error>')
    return raw_iq("error", iq_id, to, sender)[:-3] + b">" + body.encode() + b"</iq>"


def send_payloads_raw(xmpp) -> None:
    """Install the outgoing filter that writes an attached payload verbatim into its iq.

    The codec's output is schema-valid, namespace-complete XML, so pasting it in as the iq's
    only child is exactly what slixmpp would have written, without the round trip.
    """
    def outgoing(stanza):
        document = getattr(stanza, "oadr_document", None)
        if document is None:
            return stanza
        head = tostring(stanza.xml, xmlns=xmpp.default_ns, stream=xmpp, top_level=True)
        if head.endswith(" />"):
            return head[:-3] + ">" + document + "</iq>"
        return head[:head.rindex("</iq>")] + document + "</iq>"
    xmpp.add_filter("out", outgoing)


#: Deepest stanza accepted. slixmpp copies and serializes stanzas recursively; a few thousand
#: levels overflow Python's stack and take the whole stream down. OpenADR needs about 20.
MAX_STANZA_DEPTH = 64


def too_deep(root: ET.Element, limit: int = MAX_STANZA_DEPTH) -> bool:
    """Whether any element lies more than ``limit`` levels below ``root`` (checked without recursion)."""
    if len(list(root.iter())) <= limit:
        return False                        # counted in C: too few elements to be that deep
    pending = [(root, 1)]
    while pending:
        element, depth = pending.pop()
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in element)
    return False


#: Most elements in one stanza from a registered VEN. The largest OpenADR messages a VEN sends
#: within the quotas (an oadrRegisterReport of 16 reports of 256 readings is about 80,000; a day of
#: 15-minute readings of 10 rIDs in one oadrUpdateReport about 8,000) ... an offer that large is
#: refused by the quota anyway, so 20,000 leaves room for every real message.
MAX_STANZA_ELEMENTS = 20_000
#: Most elements in one stanza from an account with no registration: all it may send is
#: oadrQueryRegistration or oadrCreatePartyRegistration (under 40 elements).
MAX_UNREGISTERED_ELEMENTS = 400

#: ``admit(sender, elements)`` at arrival of an OpenADR iq set: None to take it, or (condition,
#: text, error type) to refuse it before it is parsed. ``accept_size(sender, elements)``: whether a
#: stanza that large may be looked at.
Admit = Callable[[str, int], "tuple[str, str, str] | None"]
AcceptSize = Callable[[str, int], bool]
#: ``refuse_request(iq id, sender, addressed, (condition, text, error type))``: answers a request
#: that ``admit`` refused.
RefuseRequest = Callable[[str, str, str, "tuple[str, str, str]"], None]


def element_count(root: ET.Element, limit: int = MAX_STANZA_ELEMENTS) -> int:
    """How many elements ``root`` holds, counting no further than ``limit + 1``."""
    count = 0
    for _ in root.iter():
        count += 1
        if count > limit:
            break
    return count


def guard_depth(xmpp) -> None:
    """Refuse over-deep stanzas before slixmpp builds (and recursively copies) stanza objects."""
    guard_inbound(xmpp)


def guard_inbound(xmpp, accept_size: AcceptSize | None = None, admit: Admit | None = None,
                  refuse_request: RefuseRequest | None = None) -> None:
    """Check every stanza as it arrives, before slixmpp builds stanza objects and before any
    OpenADR parsing: over-deep or over-large (``accept_size(sender, elements)`` says no)
    stanzas are refused, and ``admit`` decides whether an OpenADR request is taken at all (the
    per-account rate and in-flight limits). Counting is cheap; parsing and validating a stanza
    of 60,000 elements costs about half a second of CPU.

    A refused iq get/set is answered with an error built fresh (never a copy of the request);
    anything else refused is dropped. ``refuse_request(iq id, sender, addressed, refusal)``, if
    given, answers what ``admit`` refuses instead (the component paces "wait" refusals).
    """
    original = xmpp.incoming_filter
    dropped = ET.Element("{urn:xmpp-vtn:dropped}dropped")
    payload_tag = f"{{{NS_OADR}}}oadrPayload"

    def refuse(xml: ET.Element, condition: str, text: str, error_type: str = "modify") -> ET.Element:
        if xml.tag.endswith("}iq") and xml.get("type") in ("get", "set"):
            xmpp.make_iq_error(xml.get("id", ""), type=error_type, condition=condition, text=text,
                               ito=xml.get("from"), ifrom=xml.get("to")).send()
        return dropped

    def incoming_filter(xml: ET.Element) -> ET.Element:
        xml = original(xml)
        if len(xml) and xml[0].tag == REFUSED:      # the stanza gate's stand-in for one it refused
            marker = xml[0]
            return refuse(xml, "bad-request", f"stanza of {marker.get('elements')} elements "
                          f"({marker.get('bytes')} bytes) refused unread: larger than any OpenADR message "
                          "this sender may send")
        sender = xml.get("from") or ""
        elements = element_count(xml) if accept_size is not None else 0
        # Depth first (its walk is bounded by the count just taken), then size, which may ask
        # the store whether the sender is registered: only for stanzas too large otherwise.
        if elements <= MAX_STANZA_ELEMENTS and too_deep(xml):
            return refuse(xml, "bad-request", f"stanza nested deeper than {MAX_STANZA_DEPTH} levels")
        if accept_size is not None and not accept_size(sender, elements):
            size = elements if elements <= MAX_STANZA_ELEMENTS else f"over {MAX_STANZA_ELEMENTS}"
            return refuse(xml, "bad-request", f"stanza of {size} elements refused unread: larger than any "
                          "OpenADR message this sender may send")
        if admit is not None and xml.tag.endswith("}iq") and xml.get("type") == "set" and \
                xml.find(payload_tag) is not None:
            refusal = admit(sender, elements)
            if refusal is not None and refuse_request is not None:
                refuse_request(xml.get("id", ""), sender, xml.get("to", ""), refusal)
                return dropped
            if refusal is not None:
                return refuse(xml, *refusal)
        return xml
    xmpp.incoming_filter = incoming_filter


class StreamFailed(ConnectionError):
    """The stream could not start: authentication refused, stream error, or no connection."""


async def wait_for_session(xmpp, timeout: float = 10.0) -> None:
    """Wait for ``session_start``, failing fast on authentication or stream errors instead of hanging.

    Call it right after ``connect()``. Connection failures are retried by slixmpp until ``timeout``.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    handlers = {"session_start": lambda *_: done.done() or done.set_result(None)}
    for failure in ("failed_auth", "stream_error"):
        handlers[failure] = lambda error, f=failure: done.done() or done.set_exception(StreamFailed(f"{f}: {error}"))
    for event, handler in handlers.items():
        xmpp.add_event_handler(event, handler)
    try:
        await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        raise StreamFailed(f"no XMPP session within {timeout} s") from None
    finally:
        for event, handler in handlers.items():
            xmpp.del_event_handler(event, handler)


async def close_stream(xmpp, wait: float = 2.0) -> None:
    """Close a slixmpp stream for good: no reconnection attempt left, the connection closed (up
    to ``wait`` seconds for the server's end), and the outgoing-filter task that slixmpp keeps
    alive between connections ended with it, so no task outlives the stream."""
    xmpp.cancel_connection_attempt()
    if xmpp.transport is not None:
        await xmpp.disconnect(wait=wait)
    filters = getattr(xmpp, "_run_out_filters", None)
    if filters is not None and not filters.done():
        filters.cancel()
        await asyncio.gather(filters, return_exceptions=True)
