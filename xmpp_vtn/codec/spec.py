"""The machinery behind the codec: one ordered :class:`Spec` per XML complex type.

A spec lists its child elements in schema order as :class:`Field` objects, each naming the
payload key, the element's qualified name and a :class:`Kind` that converts between the
element and a Python value. The same table drives decoding (element -> dict) and encoding
(dict -> element), so the two directions cannot drift apart. Decoding trusts the schema
validation that already happened; encoding checks required keys and leaves the rest to the
schema validation of the finished document.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from lxml import etree

from . import values

SubElement = etree.SubElement


def q(namespace: str, name: str) -> str:
    """The Clark name ``{namespace}name`` lxml uses for tags."""
    return f"{{{namespace}}}{name}"


class EncodeError(ValueError):
    """A payload dict cannot be written as OpenADR XML; the message names the key path."""


class Kind:
    """Converts one element to a Python value and back."""

    def decode(self, element: etree._Element) -> Any:
        raise NotImplementedError

    def encode(self, parent: etree._Element, tag: str, value: Any, path: str) -> None:
        raise NotImplementedError


class Text(Kind):
    """Simple content converted by a pair of functions (str, int, float, bool, datetime, ...)."""

    def __init__(self, parse: Callable[[str], Any] = str, format: Callable[[Any], str] = str,
                 none_if_empty: bool = False):
        self.parse, self.format, self.none_if_empty = parse, format, none_if_empty

    def decode(self, element):
        text = element.text
        if text is None:
            return None if self.none_if_empty else self.parse("")
        if self.none_if_empty and not text.strip():
            return None
        return self.parse(text)

    def encode(self, parent, tag, value, path):
        try:
            text = self.format(value)
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"{path}: {exc}") from None
        try:
            SubElement(parent, tag).text = text
        except ValueError as exc:  # lxml refuses control characters and the like
            raise EncodeError(f"{path}: {exc}") from None


def _format_str(value: Any) -> str:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, not {type(value).__name__} ({value!r})")


def _format_int(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return value.strip()
        raise TypeError(f"expected an integer, not {type(value).__name__} ({value!r})")
    return str(value)


STR = Text(str, _format_str)
ID = Text(str, _format_str, none_if_empty=True)          # identifiers: '' on the wire is "absent"
INT = Text(int, _format_int)
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

    def encode(self, parent, tag, value, path):
        self.inner.encode(SubElement(parent, tag), self.inner_tag, value, path)


class Nested(Kind):
    """A complex element decoded to a dict by its own :class:`Spec`."""

    def __init__(self, spec: "Spec"):
        self.spec = spec

    def decode(self, element):
        return self.spec.decode(element)

    def encode(self, parent, tag, value, path):
        self.spec.encode(SubElement(parent, tag), value, path)

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

    def encode(self, parent, tag, value, path):
        container = SubElement(parent, tag)
        for index, item in enumerate(_as_list(value, path)):
            self.item.encode(container, self.item_tag, item, f"{path}[{index}]")


def _as_list(value: Any, path: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise EncodeError(f"{path}: expected a list, not {type(value).__name__}")


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

    def encode(self, element: etree._Element, payload: Any, path: str = "") -> None:
        if not isinstance(payload, dict):
            raise EncodeError(f"{path or self.name}: expected a dict, not {type(payload).__name__}")
        if self.before_encode is not None:
            payload = self.before_encode(payload)
        for field in self.fields:
            if field.flatten:
                # An optional flattened element is written only when its keys are given.
                if field.required or field.kind.present(payload):
                    field.kind.encode(element, field.tag, payload, path)
                continue
            key_path = f"{path}.{field.key}" if path else field.key
            value = payload.get(field.key)
            if value is None and field.plural:
                plural = payload.get(field.plural)
                if plural is not None:
                    for index, item in enumerate(_as_list(plural, key_path)):
                        field.kind.encode(element, field.tag, item, f"{path}.{field.plural}[{index}]")
                    continue
            if value is None:
                if field.required:
                    raise EncodeError(f"{key_path}: required by {self.name} but missing")
                continue
            if field.repeated:
                for index, item in enumerate(_as_list(value, key_path)):
                    field.kind.encode(element, field.tag, item, f"{key_path}[{index}]")
            else:
                field.kind.encode(element, field.tag, value, key_path)
        for tag in self.constant_children:
            SubElement(element, tag)
