"""The OpenADR 2.0b schema set, compiled once, and a hardened, validating XML parser.

Every document a VEN sends passes through :func:`parse_document`: size limit, no DOCTYPE,
no entity expansion, no network, a depth limit, then libxml2 schema validation while parsing
(one pass over the bytes). Errors become :class:`~xmpp_vtn.errors.SchemaError` with the line,
the element path and what the schema expected.
"""
from __future__ import annotations

import functools
import re
import threading
from typing import Union

from lxml import etree

from . import bundle
from .errors import SchemaError

NS_OADR = "http://openadr.org/oadr-2.0b/2012/07"
NS_EI = "http://docs.oasis-open.org/ns/energyinterop/201110"
NS_PYLD = "http://docs.oasis-open.org/ns/energyinterop/201110/payloads"
NS_EMIX = "http://docs.oasis-open.org/ns/emix/2011/06"
NS_POWER = "http://docs.oasis-open.org/ns/emix/2011/06/power"
NS_SCALE = "http://docs.oasis-open.org/ns/emix/2011/06/siscale"
NS_XCAL = "urn:ietf:params:xml:ns:icalendar-2.0"
NS_STRM = "urn:ietf:params:xml:ns:icalendar-2.0:stream"
NS_GML = "http://www.opengis.net/gml/3.2"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_ATOM = "http://www.w3.org/2005/Atom"

#: Prefixes used when we write documents and when we shorten names in error messages.
NSMAP = {"oadr": NS_OADR, "ei": NS_EI, "pyld": NS_PYLD, "emix": NS_EMIX, "power": NS_POWER,
         "scale": NS_SCALE, "xcal": NS_XCAL, "strm": NS_STRM, "gml": NS_GML, "ds": NS_DS,
         "atom": NS_ATOM}

DEFAULT_MAX_BYTES = 1024 * 1024
#: The deepest valid OpenADR document nests about 16 elements; signatures and Green Button
#: feeds carry open content, so leave room, but far below libxml2's own limit of 256.
DEFAULT_MAX_DEPTH = 48

Data = Union[bytes, bytearray, memoryview, str]

# Byte-order marks and the first '<' of UTF-16/32 text.
_WIDE_STARTS = {b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff",
                b"<\x00", b"\x00<", b"<\x00\x00\x00", b"\x00\x00\x00<"}
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_CLARK = re.compile(r"\{([^}]*)\}")
_PREFIX_FOR = {uri: prefix for prefix, uri in NSMAP.items()}


class _RefuseAll(etree.Resolver):
    """Never load anything a document points at (DTDs, entities, XIncludes)."""

    def resolve(self, system_url, public_id, context):
        raise ValueError(f"external resource {system_url!r} refused")


def _hardened_parser(schema: etree.XMLSchema | None = None, refuse_external: bool = True) -> etree.XMLParser:
    # resolve_entities/load_dtd off: no XXE, no billion laughs; no_network: no fetches;
    # huge_tree off keeps libxml2's own hard limits on depth and text size. Do not pass
    # collect_ids=False: it makes libxml2 load an external DTD subset. The resolver refuses
    # whatever still asks to be loaded.
    parser = etree.XMLParser(schema=schema, resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True)
    if refuse_external:  # only the schema bundle itself may load files (its own xs:imports)
        parser.resolvers.add(_RefuseAll())
    return parser


@functools.lru_cache(maxsize=1)
def compiled_schema() -> etree.XMLSchema:
    """The compiled 2.0b schema (``oadr_20b.xsd`` and its imports), built once per process.

    Raises :class:`~xmpp_vtn.errors.SchemaBundleError` if the bundle is missing or altered.
    """
    entry = bundle.verify()
    return etree.XMLSchema(etree.parse(str(entry), _hardened_parser(refuse_external=False)))


_per_thread = threading.local()


def _parsers() -> tuple[etree.XMLParser, etree.XMLParser]:
    # One pair per thread: an lxml parser serves one thread at a time (large documents are
    # parsed in a worker thread while the event loop's thread parses the small ones).
    parsers = getattr(_per_thread, "parsers", None)
    if parsers is None:
        parsers = _per_thread.parsers = (_hardened_parser(compiled_schema()), _hardened_parser())
    return parsers


def plain_parser() -> etree.XMLParser:
    """The hardened parser without schema validation, for fragments such as Green Button feeds."""
    return _parsers()[1]


def shorten_names(text: str) -> str:
    """Replace ``{namespace}name`` with ``prefix:name`` for the OpenADR namespaces."""
    def short(match: re.Match) -> str:
        prefix = _PREFIX_FOR.get(match.group(1))
        return f"{prefix}:" if prefix else match.group(0)
    return _CLARK.sub(short, text)


def element_path(element: etree._Element) -> str:
    """``/oadrPayload/oadrSignedObject/oadrPoll/venID``: the local names from the root down."""
    names = [etree.QName(e).localname for e in (element, *element.iterancestors())]
    return "/" + "/".join(reversed(names))


_QNAME_STEP = re.compile(r"([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)")


def _readable_path(root: etree._Element, path: str | None) -> str:
    """``/oadrPayload/oadrSignedObject/oadrPoll/venID`` for libxml2's path of the failing element.

    libxml2 writes ``/oadr:oadrPayload/...`` with the document's own prefixes, or ``/*/*[2]``
    for elements in a default namespace; we find the element and spell out its local names.
    """
    if not path:
        return ""
    query = _QNAME_STEP.sub(lambda m: f"*[local-name()='{m.group(2)}']", path)
    try:
        found = root.getroottree().xpath(query)
    except etree.XPathError:
        found = []
    if len(found) == 1 and isinstance(found[0], etree._Element):
        return element_path(found[0])
    return re.sub(r"(?<=/)[A-Za-z0-9_.-]+:", "", path)


def _schema_error(error_log, root: etree._Element) -> SchemaError:
    entry = error_log[0] if len(error_log) else None
    if entry is None:
        return SchemaError("document is not valid against the OpenADR 2.0b schema")
    path = _readable_path(root, entry.path)
    message = shorten_names(entry.message)
    return SchemaError(f"line {entry.line}: {path}: {message}", line=entry.line, path=path)


def _as_bytes(data: Data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        # A str is already decoded: its declaration's encoding no longer applies.
        try:
            return _XML_DECLARATION.sub("", data, count=1).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SchemaError(f"text cannot be encoded as UTF-8: {exc.reason}") from None
    raise TypeError(f"expected bytes or str, not {type(data).__name__}")


@functools.lru_cache(maxsize=8)
def _deeper_than(max_depth: int) -> etree.XPath:
    # One XPath step per level, compiled once and evaluated in C: any element below max_depth?
    return etree.XPath("boolean(" + "/*" * (max_depth + 1) + ")")


def _depth_exceeds(root: etree._Element, max_depth: int) -> bool:
    return bool(_deeper_than(max_depth)(root))


def _diagnose(data: bytes, root_required: str, max_depth: int = DEFAULT_MAX_DEPTH) -> SchemaError:
    """Explain why the validating parse failed: malformed XML, wrong root, or a schema violation."""
    plain = plain_parser()
    try:
        root = etree.fromstring(data, plain)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno
        message = exc.msg or str(exc)
        if "Excessive depth" in message:        # libxml2's own limit (256 levels), far past ours
            return SchemaError(f"document is nested deeper than the limit of {max_depth} elements", line=line)
        return SchemaError(f"line {line}: not well-formed XML: {message}", line=line)
    if root is None:
        return SchemaError("empty document")
    if root.tag != root_required:
        return SchemaError(f"line {root.sourceline}: root element is {shorten_names(root.tag)}, "
                           f"expected {shorten_names(root_required)}", line=root.sourceline, path="/")
    schema = compiled_schema()
    if schema.validate(root):  # pragma: no cover - the validating parser disagreed with validate()
        return SchemaError("document rejected by the validating parser")
    return _schema_error(schema.error_log, root)


def parse_document(data: Data, max_bytes: int = DEFAULT_MAX_BYTES,
                   max_depth: int = DEFAULT_MAX_DEPTH) -> etree._Element:
    """Parse and validate an ``oadrPayload`` document; return its root element.

    Refuses documents over ``max_bytes``, nested deeper than ``max_depth``, with a DOCTYPE or
    entity declarations, not well-formed, or not valid against the 2.0b schema, each with a
    :class:`~xmpp_vtn.errors.SchemaError` that says why.
    """
    raw = _as_bytes(data)
    if len(raw) > max_bytes:
        raise SchemaError(f"document is {len(raw)} bytes, more than the limit of {max_bytes}")
    if not raw.strip():
        raise SchemaError("empty document")
    if raw[:4] in _WIDE_STARTS or raw[:2] in _WIDE_STARTS:
        # UTF-16/32 would hide a DOCTYPE from the byte scan below; OpenADR peers send UTF-8.
        raise SchemaError("only UTF-8 and other ASCII-compatible encodings are accepted (this looks like UTF-16 or UTF-32)")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise SchemaError("DOCTYPE and entity declarations are not allowed in OpenADR payloads")
    validating = _parsers()[0]
    try:
        root = etree.fromstring(raw, validating)
    except etree.XMLSyntaxError:
        raise _diagnose(raw, f"{{{NS_OADR}}}oadrPayload", max_depth) from None
    except ValueError as exc:  # lxml refuses some inputs before parsing (e.g. bad encodings)
        raise SchemaError(f"cannot parse document: {exc}") from None
    if root.getroottree().docinfo.doctype:
        # Catches declarations the byte scan cannot see (e.g. UTF-16 input).
        raise SchemaError("DOCTYPE and entity declarations are not allowed in OpenADR payloads")
    # Nesting max_depth + 1 deep takes that many start tags, each with its "<" byte (the encoding
    # is ASCII-compatible, checked above): most documents are too short to need the walk.
    if raw.count(b"<") > max_depth and _depth_exceeds(root, max_depth):
        raise SchemaError(f"document is nested deeper than the limit of {max_depth} elements")
    return root


def validate_element(root: etree._Element) -> None:
    """Validate an element tree we built; raise :class:`SchemaError` naming the first violation."""
    schema = compiled_schema()
    if not schema.validate(root):
        raise _schema_error(schema.error_log, root)
