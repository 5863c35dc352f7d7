"""Why an OpenADR payload is not valid, in plain words: ``xmpp-vtn validate FILE...``.

The document is read with the VTN's own hardened rules (size and depth limits, no DOCTYPE or
entities, no network), then checked against the bundled 2.0b XSDs with ``xmlschema``, which
reports every violation with the element it concerns; each becomes one :class:`Problem`: the
line, the element's path below ``oadrSignedObject`` and what was expected against what was
found. libxml2 (what the VTN itself validates with) has the last word on validity, and the
codec then reads the message as the VTN would (catching what the schema's loose patterns let
through, such as the duration ``P1H``), so a file this module calls valid is one the VTN accepts.

A document may be a whole ``oadrPayload``, a bare ``oadrSignedObject``, or a bare 2.0b message
such as ``oadrDistributeEvent`` (as the specification prints its samples); a bare message is
judged against its own element and the verdict says so.

>>> verdict = explain(open("event.xml", "rb").read(), "event.xml")      # doctest: +SKIP
>>> print(render(verdict))                                               # doctest: +SKIP
event.xml: valid (oadrDistributeEvent)
"""
from __future__ import annotations

import copy
import difflib
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import xmlschema
from lxml import etree

from .. import bundle, codec
from ..schema import (DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, NS_OADR, NSMAP, compiled_schema, plain_parser,
                     shorten_names)

ROOTS = (f"{{{NS_OADR}}}oadrPayload", f"{{{NS_OADR}}}oadrSignedObject")
#: The 23 messages, as root elements of a bare message file.
BARE_MESSAGES = frozenset(f"{{{NS_OADR}}}{name}" for name in codec.MESSAGE_TYPES)
BARE_MESSAGE = "a bare message"
#: More than this many problems in one file are summarised: the first ones usually explain the rest.
MAX_PROBLEMS = 20

# The first bytes of UTF-16/32 text: it would hide a DOCTYPE from the byte scan (as in schema.py).
_WIDE_STARTS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"<\x00", b"\x00<")


@dataclass(frozen=True)
class Problem:
    """One reason a document is not valid. ``path`` is the element's path (empty: the document)."""

    message: str
    line: int | None = None
    path: str = ""

    def describe(self, source: str = "") -> str:
        """``source:line: path: message``, leaving out what is unknown."""
        where = ":".join(part for part in (source, str(self.line) if self.line else "") if part)
        return ": ".join(part for part in (where, self.path, self.message) if part)


@dataclass(frozen=True)
class Verdict:
    """The outcome for one document: ``kind`` is valid, invalid, not well-formed, refused or unreadable.

    ``judged_as`` is :data:`BARE_MESSAGE` when the document was a message without its
    ``oadrPayload`` (checked against the message's own element), else None.
    """

    source: str
    kind: str
    message_type: str | None = None
    problems: tuple[Problem, ...] = ()
    omitted: int = 0
    judged_as: str | None = None

    @property
    def valid(self) -> bool:
        return self.kind == "valid"


# -- the schema, compiled once ---------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def xsd() -> xmlschema.XMLSchema:
    """The 2.0b schema for ``xmlschema``, from the bundle's entry point, compiled once per process.

    ``allow="sandbox"``: the schema may import only files of its own directory, never the network.
    """
    entry = bundle.verify()
    # An absolute path: xmlschema's sandbox resolves a relative one against itself twice.
    return xmlschema.XMLSchema(str(Path(entry).resolve()), allow="sandbox", defuse="always")


# -- reading ---------------------------------------------------------------------------------------

def _refusal(raw: bytes, max_bytes: int) -> str | None:
    """Why the VTN would refuse these bytes before parsing them, or None."""
    if len(raw) > max_bytes:
        return f"document is {len(raw)} bytes, more than the limit of {max_bytes}"
    if not raw.strip():
        return "empty document"
    if raw.startswith(_WIDE_STARTS):
        return "only UTF-8 and other ASCII-compatible encodings are accepted (this looks like UTF-16 or UTF-32)"
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        return "DOCTYPE and entity declarations are not allowed in OpenADR payloads (they are refused unread)"
    return None


def _read(raw: bytes, source: str, max_bytes: int, max_depth: int) -> etree._Element | Verdict:
    """The parsed root element, or the verdict that explains why there is none."""
    refused = _refusal(raw, max_bytes)
    if refused:
        return Verdict(source, "refused", problems=(Problem(refused),))
    # libxml2's error log is per thread, not per parse: without this, a syntax error's log would
    # also list what an earlier document did wrong.
    etree.clear_error_log()
    try:
        root = etree.fromstring(raw, plain_parser())
    except etree.XMLSyntaxError as exc:
        entries = [entry for entry in exc.error_log
                   if entry.level_name in ("ERROR", "FATAL") and not entry.domain_name.startswith("SCHEMA")]
        problems = tuple(Problem(entry.message.strip(), entry.line or None) for entry in entries[:3]) or \
            (Problem(exc.msg or str(exc), exc.lineno or None),)
        return Verdict(source, "not well-formed", problems=problems)
    except ValueError as exc:                    # lxml refuses some inputs outright (bad encodings)
        return Verdict(source, "not well-formed", problems=(Problem(str(exc)),))
    if root.getroottree().docinfo.doctype:
        return Verdict(source, "refused", problems=(Problem("DOCTYPE declarations are not allowed"),))
    if root.xpath("boolean(" + "/*" * (max_depth + 1) + ")"):
        return Verdict(source, "refused", problems=(
            Problem(f"document is nested deeper than the limit of {max_depth} elements"),))
    return root


# -- naming things ---------------------------------------------------------------------------------

def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else str(tag)


def _path(element: etree._Element | None) -> str:
    """``oadrDistributeEvent/oadrEvent[2]/eiEvent``: local names below oadrSignedObject, with a
    position only where a name repeats among siblings."""
    if element is None:
        return ""
    steps = []
    for node in (element, *element.iterancestors()):
        if node.tag in ROOTS and node is not element:
            break
        step = _local(node.tag)
        parent = node.getparent()
        if parent is not None:
            same = [sibling for sibling in parent if sibling.tag == node.tag]
            if len(same) > 1:
                step += f"[{same.index(node) + 1}]"
        steps.append(step)
    return "/".join(reversed(steps))


def _names(particles: Iterable[Any]) -> list[str]:
    seen: list[str] = []
    for particle in particles or ():
        for name in _substitutes(particle):
            if name not in seen:
                seen.append(name)
    return seen


def _substitutes(particle: Any) -> list[str]:
    """An abstract head element stands for its substitution group: name the members instead."""
    name = getattr(particle, "name", None)
    if not isinstance(name, str):
        return []
    if getattr(particle, "abstract", False):
        try:
            members = particle.maps.substitution_groups.get(name, ())
            names = sorted(shorten_names(member.name) for member in members if not getattr(member, "abstract", False))
            if names:
                return names
        except AttributeError:
            pass
    return [shorten_names(name)]


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


# -- the content model: what could come next --------------------------------------------------------

#: Replaying a content model never needs more steps than a group has particles; this bounds a
#: replay that would not end on some unforeseen model.
_MAX_STEPS = 1000


def _consume(model: Any, tag: str) -> bool:
    """Advance ``model`` past an element ``tag``; False if it cannot come next (nothing required skipped)."""
    for _ in range(_MAX_STEPS):
        if model.element is None:
            return False
        if model.match_element(tag) is None:
            if any(True for _ in model.advance(False)):
                return False                       # skipping on would leave out a required element
            continue
        return not any(True for _ in model.advance(True))
    return False


def _allowed_next(group: Any, before: list[etree._Element]) -> tuple[list[str], bool] | None:
    """(element names that may follow ``before`` in ``group``, whether the content may end there);
    None when the model cannot be replayed (an xmlschema version without these helpers)."""
    try:
        model = group.get_model_visitor()
        for child in before:
            if not _consume(model, child.tag):
                return None
        allowed = []
        for particle in group.iter_elements():
            for name in _substitutes(particle):
                clark = _clark(name)
                if clark and name not in allowed and _consume(copy.copy(model), clark):
                    allowed.append(name)
        can_end = not any(True for _ in copy.copy(model).stop())
        return allowed, can_end
    except Exception:                              # noqa: BLE001 - only an aid to the explanation
        return None


def _clark(short: str) -> str | None:
    """``{namespace}local`` for a name :func:`shorten_names` shortened."""
    if short.startswith("{"):
        return short
    prefix, _, local = short.partition(":")
    namespace = NSMAP.get(prefix)
    return f"{{{namespace}}}{local}" if namespace and local else None


# -- turning xmlschema's errors into problems ------------------------------------------------------

def _children_problem(error: Any) -> Problem:
    parent = error.elem
    child = error.invalid_child
    children = [node for node in parent if isinstance(node.tag, str)]
    index = children.index(child) if child is not None and child in children else len(children)
    required = _names(error.expected or [])
    if child is None:
        what = f"missing required element {_one_of(required)}" if required else "content is incomplete"
        return Problem(what, parent.sourceline, _path(parent))
    found = shorten_names(child.tag)
    if required and _comes_later(error.validator, children[:index], child.tag):
        # The child is fine where it is, but something required had to come before it.
        return Problem(f"missing required element {_one_of(required)} before {found}", child.sourceline,
                       _path(parent))
    replay = _allowed_next(error.validator, children[:index])
    if replay is not None:
        allowed, can_end = replay
        if allowed:
            expected = _listing(allowed) + (f", or the end of {_local(parent.tag)}" if can_end else "")
        else:
            expected = f"nothing more inside {_local(parent.tag)}"
    else:
        allowed, expected = required, (_one_of(required) if required else None)
    what = f"unexpected element {found}"
    if _belongs(error.validator, child.tag):
        what += " here (repeated, or out of order)"
    else:
        close = difflib.get_close_matches(found, allowed, n=1, cutoff=0.8)
        if close:
            what += f" (did you mean {close[0]}?)"
    return Problem(what + (f"; expected {expected}" if expected else ""), child.sourceline, _path(child))


def _listing(names: list[str], limit: int = 10) -> str:
    if len(names) <= limit:
        return _one_of(names)
    return f"one of {', '.join(names[:limit])} and {len(names) - limit} more"


def _comes_later(group: Any, before: list[etree._Element], tag: str) -> bool:
    """Whether ``tag`` would fit further on in ``group`` once the required elements it skipped were there."""
    try:
        model = group.get_model_visitor()
        for child in before:
            if not _consume(model, child.tag):
                return False
        for _ in range(_MAX_STEPS):
            if model.element is None:
                return False
            if model.match_element(tag) is not None:
                return True
            for _ in model.advance(False):        # a required element skipped: what we are finding out
                pass
        return False
    except Exception:                              # noqa: BLE001 - only an aid to the explanation
        return False


def _belongs(group: Any, tag: str) -> bool:
    try:
        return group.match_element(tag) is not None
    except Exception:                              # noqa: BLE001
        return False


def _type_name(validator: Any) -> str | None:
    name = getattr(validator, "prefixed_name", None) or getattr(validator, "name", None)
    return shorten_names(name) if isinstance(name, str) else None


#: What a value of these pattern-restricted types looks like, said better than their regex.
_FORMS = {
    "xcal:DurationValueType": "an ISO 8601 duration such as PT10M",
    "xcal:DateTimeType": "a date-time such as 2026-11-23T12:00:00Z",
}


def _value_problem(error: Any, element: etree._Element) -> tuple[int, str]:
    """(rank, message) for a wrong value: a builtin type's complaint is the clearest (rank 0)."""
    validator = error.validator
    value = error.obj if isinstance(error.obj, str) else (element.text or "").strip()
    shown = repr(value)
    kind = type(validator).__name__
    if kind == "XsdAtomicBuiltin" or (isinstance(error, xmlschema.XMLSchemaDecodeError) and _type_name(validator)):
        return 0, f"value {shown} is not a valid {_type_name(validator)}"
    if kind == "XsdEnumerationFacets":
        options = ", ".join(repr(option) for option in getattr(validator, "enumeration", []))
        return 1, f"value {shown} is not allowed; expected one of {options}"
    if kind == "XsdPatternFacets":
        owner = _type_name(getattr(validator, "parent", None))
        form = _FORMS.get(owner or "", owner or "the form the schema requires")
        return 2, f"value {shown} is not {form}" if owner in _FORMS else f"value {shown} does not match {form}"
    reason = shorten_names(error.reason or str(error))
    # xmlschema says "value must be 0 <= x < 2^32": put the value where it says "value".
    return 3, (f"value {shown} {reason[len('value '):]}" if reason.startswith("value ") else f"value {shown}: {reason}")


def _element_of(error: Any) -> etree._Element | None:
    element = getattr(error, "elem", None)
    return element if isinstance(element, etree._Element) else None


_TEXT_IN_ELEMENT_ONLY = "character data between child elements not allowed"


def _plain_text_value(error: Any, element: etree._Element | None) -> bool:
    """Whether ``error`` is a value written as bare text in an element that holds it in a child."""
    return (element is not None and (error.reason or "") == _TEXT_IN_ELEMENT_ONLY
            and bool((element.text or "").strip()) and not any(isinstance(c.tag, str) for c in element))


def _plain_text_problem(error: Any, element: etree._Element) -> Problem | None:
    """``<ei:reportBackDuration>PT0S</ei:reportBackDuration>``: say where the value belongs.

    Some published samples write a duration this way; the 2.0b schema wants it inside
    ``xcal:duration``. ``error`` is the "content is not complete" error that follows the text one.
    """
    expected = _names(getattr(error, "expected", None) or [])
    if len(expected) != 1:
        return None
    text, name, child = (element.text or "").strip(), shorten_names(element.tag), expected[0]
    return Problem(f"value {text!r} is written as plain text, but the 2.0b schema wants it inside {child}: "
                   f"<{name}><{child}>{text}</{child}></{name}>", element.sourceline, _path(element))


def problems_from(errors: Iterable[Any]) -> list[Problem]:
    """One :class:`Problem` per violation (a value's several complaints become its clearest one)."""
    problems: list[Problem] = []
    values: dict[tuple[int, str], tuple[int, int]] = {}   # (element, attribute) -> (rank, index in problems)
    plain_text: dict[int, int] = {}                         # element -> index of its plain-text problem
    for error in errors:
        element = _element_of(error)
        if isinstance(error, xmlschema.XMLSchemaChildrenValidationError) and element is not None:
            merged = _plain_text_problem(error, element) if id(element) in plain_text else None
            if merged is not None:                          # one problem for the value and its missing child
                problems[plain_text.pop(id(element))] = merged
                continue
            problems.append(_children_problem(error))
            continue
        if _plain_text_value(error, element):
            plain_text[id(element)] = len(problems)
        reason = shorten_names(error.reason or str(error))
        if element is None:
            problems.append(Problem(reason))
            continue
        attribute = _attribute(error)
        if attribute is not None:
            rank, message = 1, _attribute_problem(attribute, reason)
        elif isinstance(error.obj, str) or (element.text or "").strip():
            rank, message = _value_problem(error, element)
        else:
            rank, message = 3, reason
        key = (id(element), attribute or "")
        problem = Problem(message, element.sourceline, _path(element))
        if key in values:
            old_rank, at = values[key]
            if rank < old_rank:
                problems[at] = problem
                values[key] = (rank, at)
            continue
        values[key] = (rank, len(problems))
        problems.append(problem)
    return problems


def _attribute(error: Any) -> str | None:
    """The attribute an error is about, when it is about one."""
    match = re.search(r"'([^']+)' attribute|attribute '([^']+)'", error.reason or "")
    if match:
        return shorten_names(match.group(1) or match.group(2))
    validator = error.validator
    if type(validator).__name__ == "XsdAttribute" and isinstance(getattr(validator, "name", None), str):
        return shorten_names(validator.name)
    return None


def _attribute_problem(name: str, reason: str) -> str:
    if "not allowed" in reason:
        return f"attribute {name} is not allowed here"
    return f"attribute {name}: {reason}"


# -- the verdict -----------------------------------------------------------------------------------

def _message_element(root: etree._Element) -> etree._Element | None:
    """The message element of a payload, a signed object or a bare message; None if there is none."""
    if root.tag in BARE_MESSAGES:
        return root
    signed = root if root.tag == ROOTS[1] else root.find(f"{{{NS_OADR}}}oadrSignedObject")
    if signed is None:
        return None
    message = next((child for child in signed if isinstance(child.tag, str)), None)
    if message is None or etree.QName(message.tag).namespace != NS_OADR or _local(message.tag) not in xsd().elements:
        return None                               # not a message the schema knows: do not name it as one
    return message


def _message_type(root: etree._Element) -> str | None:
    message = _message_element(root)
    return None if message is None else _local(message.tag)


def _codec_problems(root: etree._Element) -> list[Problem]:
    """What the VTN's codec refuses in a schema-valid document: values only the schema's loose
    patterns admit (the duration ``P1H``), date-times a payload cannot hold (9999-12-31T24:00:00)."""
    message = _message_element(root)
    if message is None or message.tag not in BARE_MESSAGES:
        return []
    try:
        codec.decode_message(message)
    except codec.DecodeError as exc:
        return [Problem(exc.problem, exc.element.sourceline, _path(exc.element))]
    return []


def _libxml2_problems(root: etree._Element) -> list[Problem]:
    """What libxml2 (the VTN's validator) finds, for a document xmlschema passed."""
    schema = compiled_schema()
    if schema.validate(root):
        return []
    problems = []
    for entry in list(schema.error_log)[:MAX_PROBLEMS]:
        found = root.getroottree().xpath(re.sub(r"([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)",
                                                lambda m: f"*[local-name()='{m.group(2)}']", entry.path or "/")) \
            if entry.path else []
        path = _path(found[0]) if len(found) == 1 and isinstance(found[0], etree._Element) else ""
        problems.append(Problem(_plain_libxml2(shorten_names(entry.message)), entry.line or None, path))
    return problems


_LIBXML2_VALUE = re.compile(r"^'(.*)' is not a valid value of the (?:atomic |list |union )?type '([^']+)'\.?$", re.S)


def _plain_libxml2(message: str) -> str:
    """libxml2's words in this module's style: the path already names the element."""
    message = re.sub(r"^Element '[^']+'(?:, attribute '([^']+)')?: ",
                     lambda m: f"attribute {m.group(1)}: " if m.group(1) else "", message.strip())
    value = _LIBXML2_VALUE.match(message)
    return f"value {value.group(1)!r} is not a valid {value.group(2)}" if value else message


def explain(data: bytes, source: str = "<document>", max_bytes: int = DEFAULT_MAX_BYTES,
            max_depth: int = DEFAULT_MAX_DEPTH) -> Verdict:
    """Check one document (an ``oadrPayload``, or a bare ``oadrSignedObject``) and say why it fails."""
    root = _read(data, source, max_bytes, max_depth)
    if isinstance(root, Verdict):
        return root
    judged_as = BARE_MESSAGE if root.tag in BARE_MESSAGES else None
    if root.tag not in ROOTS and judged_as is None:
        return Verdict(source, "invalid", problems=(Problem(
            f"root element is {shorten_names(root.tag)}; expected oadr:oadrPayload, oadr:oadrSignedObject or a "
            "bare 2.0b message such as oadr:oadrDistributeEvent", root.sourceline),))
    message_type = _message_type(root)
    # allow="none": the document itself may not make xmlschema fetch anything (its own
    # schemaLocation hints included). A bare message is a global element of the schema, so
    # both validators judge it against its own declaration.
    resource = xmlschema.XMLResource(root, allow="none", defuse="always")
    problems = problems_from(xsd().iter_errors(resource))
    if not problems:
        problems = _libxml2_problems(root)
    if not problems:
        problems = _codec_problems(root)
    if not problems:
        return Verdict(source, "valid", message_type, judged_as=judged_as)
    return Verdict(source, "invalid", message_type, tuple(problems[:MAX_PROBLEMS]),
                   max(0, len(problems) - MAX_PROBLEMS), judged_as)


def explain_file(path: str | Path) -> Verdict:
    """:func:`explain` for a file; an unreadable file is a verdict too, not an exception."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return Verdict(str(path), "unreadable", problems=(Problem(f"cannot read: {exc.strerror or exc}"),))
    return explain(data, str(path))


def render(verdict: Verdict) -> str:
    """``FILE: valid (oadrDistributeEvent)``, or a heading and one indented line per problem.

    A bare message says so: ``FILE: valid (oadrDistributeEvent, judged as a bare message)``.
    """
    said = [part for part in (verdict.message_type, verdict.judged_as and f"judged as {verdict.judged_as}")
            if part]
    what = f" ({', '.join(said)})" if said else ""
    if verdict.valid:
        return f"{verdict.source}: valid{what}"
    count = len(verdict.problems) + verdict.omitted
    lines = [f"{verdict.source}: {verdict.kind}{what}, {count} problem{'s' if count != 1 else ''}"]
    lines += ["  " + problem.describe(verdict.source) for problem in verdict.problems]
    if verdict.omitted:
        lines.append(f"  ... and {verdict.omitted} more")
    return "\n".join(lines)
