"""The machinery behind the codec: one ordered :class:`Spec` per XML complex type.

A spec lists its child elements in schema order as :class:`Field` objects, each naming the
payload key, the element's qualified name and a :class:`Kind` that converts between the
element and a Python value. The same table drives decoding (element -> dict) and encoding
(dict -> element), so the two directions cannot drift apart. Decoding trusts the schema
validation that already happened; encoding checks required keys and leaves the rest to the
schema validation of the finished document.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from lxml import etree

from . import values

SubElement = etree.SubElement


def q(namespace: str, name: str) -> str:
    """The Clark name ``{namespace}name`` lxml uses for tags."""
    return f"{{{namespace}}}{name}"


class EncodeError(ValueError):
    """A payload dict cannot be written as OpenADR XML; the message names the key path,
    e.g. ``events[0].event_descriptor.event_id: required by eventDescriptor but missing``."""

    def __init__(self, problem: str, path: str = ""):
        super().__init__(f"{path}: {problem}" if path else problem)
        self.problem, self.path = problem, path

    def under(self, step: str) -> "EncodeError":
        """The same error seen from the parent: ``step`` is a key or an ``[index]``."""
        if not self.path:
            path = step
        elif self.path.startswith("["):
            path = step + self.path
        else:
            path = f"{step}.{self.path}"
        return EncodeError(self.problem, path)


class DecodeError(ValueError):
    """A schema-valid value Python cannot represent, or that only the schema's loose pattern
    admits (``P1H``, ``PT``, ``9999-12-31T24:00:00``); ``element`` is where it is, ``problem`` says why
    in words, e.g. ``value 'P1H' is not an ISO 8601 duration: ...``."""

    def __init__(self, problem: str, element: etree._Element):
        super().__init__(problem)
        self.problem, self.element = problem, element


def as_mapping(value: Any) -> dict:
    """A payload level as a dict: dicts pass through, dataclasses become dicts of their set fields.

    Converting one level at a time, only where a dataclass appears, keeps plain-dict payloads free.
    """
    if isinstance(value, dict):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
                if getattr(value, f.name) is not None}
    raise EncodeError(f"expected a dict, not {type(value).__name__}")


class Kind:
    """Converts one element to a Python value and back."""

    def decode(self, element: etree._Element) -> Any:
        raise NotImplementedError

    def encode(self, parent: etree._Element, tag: str, value: Any) -> None:
        """Append the element(s) for ``value``; raise :class:`EncodeError` without a path."""
        raise NotImplementedError


class Text(Kind):
    """Simple content converted by a pair of functions (str, int, float, bool, datetime, ...)."""

    def __init__(self, parse: Callable[[str], Any] = str, format: Callable[[Any], str] = str,
                 none_if_empty: bool = False):
        self.parse, self.format, self.none_if_empty = parse, format, none_if_empty

    def decode(self, element):
        text = element.text
        if text is None:
            if self.none_if_empty:
                return None
            text = ""
        elif self.none_if_empty and not text.strip():
            return None
        try:
            return self.parse(text)
        except (ValueError, OverflowError) as exc:
            problem = str(exc)
            if not problem.startswith("value "):
                problem = f"value {text.strip()!r}: {problem}"
            raise DecodeError(problem, element) from None

    def encode(self, parent, tag, value):
        try:
            SubElement(parent, tag).text = self.format(value)
        except (TypeError, ValueError, OverflowError) as exc:  # lxml refuses control characters with ValueError
            raise EncodeError(str(exc)) from None


def _format_str(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, not {type(value).__name__} ({value!r})")


def _format_int(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return value.strip()
        raise TypeError(f"expected an integer, not {type(value).__name__} ({value!r})")
    return str(value)


def _format_response_code(value: Any) -> str:
    # ei:ResponseCodeType is exactly three digits: 0 is written 000 and 99 is 099, so codes
    # read as ints (what OpenLEADR users compare against) survive the round trip.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a response code such as 200 or '200', not {type(value).__name__} ({value!r})")
    if not 0 <= value <= 999:
        raise ValueError(f"response code {value} is not three digits (000 to 999)")
    return f"{value:03d}"


def _collapse(text: str) -> str:
    # xs:token and xs:anyURI values: the schema ignores surrounding and repeated whitespace.
    return " ".join(text.split())


STR = Text(str, _format_str)
TOKEN = Text(_collapse, _format_str)
ID = Text(str, _format_str, none_if_empty=True)          # identifiers: '' on the wire is "absent"
INT = Text(int, _format_int)
RESPONSE_CODE = Text(int, _format_response_code)     # int in Python, three digits on the wire
FLOAT = Text(values.parse_float, values.format_float)
DECIMAL = Text(values.parse_decimal, values.format_float)
BOOL = Text(values.parse_bool, values.format_bool)
DATETIME = Text(values.parse_datetime, values.format_datetime)
DURATION = Text(values.parse_duration, values.format_duration)


class Wrapped(Kind):
    """An element whose only child carries the value, e.g. ``<xcal:dtstart><xcal:date-time>``."""

    def __init__(self, inner_tag: str, inner: Kind):
        self.inner_tag, self.inner = inner_tag, inner

    def decode(self, element):
        return self.inner.decode(element[0])

    def encode(self, parent, tag, value):
        self.inner.encode(SubElement(parent, tag), self.inner_tag, value)


class Nested(Kind):
    """A complex element decoded to a dict by its own :class:`Spec`."""

    def __init__(self, spec: "Spec"):
        self.spec = spec

    def decode(self, element):
        return self.spec.decode(element)

    def encode(self, parent, tag, value):
        self.spec.encode(SubElement(parent, tag), value)

    def present(self, payload: dict) -> bool:
        """Whether a parent dict carries this flattened element (its first key is given)."""
        return payload.get(self.spec.fields[0].key) is not None


class WrappedList(Kind):
    """A container element holding repeated items, decoded to a list: ``<strm:intervals>``."""

    def __init__(self, item_tag: str, item: Kind):
        self.item_tag, self.item = item_tag, item

    def decode(self, element):
        decode = self.item.decode
        return [decode(child) for child in element]

    def encode(self, parent, tag, value):
        container = SubElement(parent, tag)
        encode_items(self.item, container, self.item_tag, value)


def encode_items(kind: Kind, parent: etree._Element, tag: str, items: Any) -> None:
    """Encode each item of a list; errors name the item's index."""
    if not isinstance(items, (list, tuple)):
        raise EncodeError(f"expected a list, not {type(items).__name__}")
    for index, item in enumerate(items):
        try:
            kind.encode(parent, tag, item)
        except EncodeError as exc:
            raise exc.under(f"[{index}]") from None


class Field:
    """One child element of a spec.

    ``key`` is the payload key (``None`` with ``flatten``: the child's own dict is merged into
    the parent's); ``tags`` the qualified names that map to this field (several for
    substitution groups); ``repeated`` makes the value a list (always present when decoding,
    possibly empty); ``plural`` names the list key used when an element that is normally
    single repeats (``report_payload`` -> ``report_payloads``).
    """

    __slots__ = ("key", "tag", "tags", "kind", "required", "repeated", "flatten", "plural")

    def __init__(self, key: str | None, tag: str, kind: Kind, required: bool = False,
                 repeated: bool = False, flatten: bool = False, plural: str | None = None,
                 extra_tags: Iterable[str] = ()):
        self.key, self.tag, self.kind = key, tag, kind
        self.tags = (tag, *extra_tags)
        self.required, self.repeated, self.flatten, self.plural = required, repeated, flatten, plural


class Spec:
    """The ordered children of one complex type, with optional fix-ups after decode / before encode."""

    def __init__(self, name: str, fields: list[Field],
                 after_decode: Callable[[dict], None] | None = None,
                 before_encode: Callable[[dict], dict] | None = None,
                 constant_children: Iterable[str] = ()):
        self.name = name
        self.fields = fields
        self.by_tag: dict[str, Field] = {}
        for field in fields:
            for tag in field.tags:
                self.by_tag[tag] = field
        self.list_keys = tuple(f.key for f in fields if f.repeated)
        self.after_decode, self.before_encode = after_decode, before_encode
        # Elements the schema requires but that carry nothing (xcal:components in an active period).
        self.constant_children = tuple(constant_children)

    def decode(self, element: etree._Element) -> dict:
        result: dict[str, Any] = {key: [] for key in self.list_keys}
        by_tag = self.by_tag
        for child in element:
            field = by_tag.get(child.tag)
            if field is None:
                continue
            if field.flatten:
                result.update(field.kind.decode(child))
            elif field.repeated:
                result[field.key].append(field.kind.decode(child))
            elif field.plural and field.key in result:
                result[field.plural] = [result.pop(field.key), field.kind.decode(child)]
            elif field.plural and field.plural in result:
                result[field.plural].append(field.kind.decode(child))
            else:
                result[field.key] = field.kind.decode(child)
        if self.after_decode is not None:
            self.after_decode(result)
        return result

    def encode(self, element: etree._Element, payload: Any) -> None:
        """Append this type's children for ``payload`` to ``element``, in schema order."""
        if type(payload) is not dict:
            payload = as_mapping(payload)
        if self.before_encode is not None:
            payload = self.before_encode(payload)
        get = payload.get
        for field in self.fields:
            if field.flatten:
                # An optional flattened element is written only when its keys are given.
                if field.required or field.kind.present(payload):
                    field.kind.encode(element, field.tag, payload)
                continue
            value = get(field.key)
            if value is None:
                if field.plural is not None and get(field.plural) is not None:
                    try:
                        encode_items(field.kind, element, field.tag, get(field.plural))
                    except EncodeError as exc:
                        raise exc.under(field.plural) from None
                elif field.required:
                    raise EncodeError(f"required by {self.name} but missing", field.key)
                continue
            if field.plural is not None and get(field.plural) is not None:
                # Writing one and dropping the other would lose data without a word.
                raise EncodeError(f"give either {field.key!r} (one) or {field.plural!r} (a list), not both",
                                  field.key)
            try:
                if field.repeated:
                    encode_items(field.kind, element, field.tag, value)
                else:
                    field.kind.encode(element, field.tag, value)
            except EncodeError as exc:
                raise exc.under(field.key) from None
        for tag in self.constant_children:
            SubElement(element, tag)
