"""Kinds for the parts of OpenADR that are not plain nesting: targets, item bases (units),
payload bases, Green Button feeds, pending reports and ``testEvent``.
"""
from __future__ import annotations

import copy
from typing import Any

from lxml import etree

from ..schema import NS_ATOM, NS_EI, NS_EMIX, NS_GML, NS_OADR, NS_POWER, NS_SCALE, plain_parser
from . import values
from .spec import (BOOL, DECIMAL, FLOAT, STR, DecodeError, EncodeError, Field, Kind, Nested, Spec, SubElement,
                   Text, Wrapped, as_mapping, encode_items, q)

# ---------------------------------------------------------------------------------------------
# Targets (ei:EiTargetType): a list of single-key dicts, like OpenLEADR, plus targets_by_type.

_NODE = Spec("node", [Field("node", q(NS_POWER, "node"), STR, required=True)])
_MRID = Spec("mrid", [Field("mrid", q(NS_POWER, "mrid"), STR, required=True)])
_TRANSPORT_INTERFACE = Spec("transportInterface", [
    Field("point_of_receipt", q(NS_POWER, "pointOfReceipt"), STR, required=True),
    Field("point_of_delivery", q(NS_POWER, "pointOfDelivery"), STR, required=True),
])
_GML_ID = q(NS_GML, "id")


class FeatureCollection(Kind):
    """``gml:FeatureCollection`` -> ``{'id', 'location': {'polygon': {'id', 'exterior':
    {'linear_ring': {'pos_list': [float, ...]}}}}}`` (ids only when present)."""

    def decode(self, element):
        polygon = element[0][0]
        pos_list = polygon[0][0][0].text or ""
        polygon_dict: dict[str, Any] = {}
        if polygon.get(_GML_ID) is not None:
            polygon_dict["id"] = polygon.get(_GML_ID)
        polygon_dict["exterior"] = {"linear_ring": {"pos_list": [float(v) for v in pos_list.split()]}}
        result: dict[str, Any] = {}
        if element.get(_GML_ID) is not None:
            result["id"] = element.get(_GML_ID)
        result["location"] = {"polygon": polygon_dict}
        return result

    def encode(self, parent, tag, value):
        try:
            polygon = value["location"]["polygon"]
            positions = polygon["exterior"]["linear_ring"]["pos_list"]
        except (KeyError, TypeError):
            raise EncodeError("expected {'location': {'polygon': {'exterior': "
                              "{'linear_ring': {'pos_list': [...]}}}}}") from None
        collection = SubElement(parent, tag)
        if value.get("id") is not None:
            collection.set(_GML_ID, str(value["id"]))
        polygon_element = SubElement(SubElement(collection, q(NS_GML, "location")), q(NS_GML, "Polygon"))
        if polygon.get("id") is not None:
            polygon_element.set(_GML_ID, str(polygon["id"]))
        ring = SubElement(SubElement(polygon_element, q(NS_GML, "exterior")), q(NS_GML, "LinearRing"))
        try:
            text = positions if isinstance(positions, str) else " ".join(
                values.format_float(float(v)) for v in positions)
        except (TypeError, ValueError):
            raise EncodeError("pos_list: expected a list of numbers") from None
        SubElement(ring, q(NS_GML, "posList")).text = text


_AREA = Spec("serviceArea", [Field("feature_collection", q(NS_GML, "FeatureCollection"),
                                   FeatureCollection(), required=True)])

#: Target kinds in schema order: payload key -> (element name, kind).
TARGET_KINDS: dict[str, tuple[str, Kind]] = {
    "aggregated_p_node": (q(NS_POWER, "aggregatedPnode"), Nested(_NODE)),
    "end_device_asset": (q(NS_POWER, "endDeviceAsset"), Nested(_MRID)),
    "meter_asset": (q(NS_POWER, "meterAsset"), Nested(_MRID)),
    "p_node": (q(NS_POWER, "pnode"), Nested(_NODE)),
    "service_area": (q(NS_EMIX, "serviceArea"), Nested(_AREA)),
    "service_delivery_point": (q(NS_POWER, "serviceDeliveryPoint"), Nested(_NODE)),
    "service_location": (q(NS_POWER, "serviceLocation"), Nested(_AREA)),
    "transport_interface": (q(NS_POWER, "transportInterface"), Nested(_TRANSPORT_INTERFACE)),
    "group_id": (q(NS_EI, "groupID"), STR),
    "group_name": (q(NS_EI, "groupName"), STR),
    "resource_id": (q(NS_EI, "resourceID"), STR),
    "ven_id": (q(NS_EI, "venID"), STR),
    "party_id": (q(NS_EI, "partyID"), STR),
}
_TARGET_BY_TAG = {tag: (key, kind) for key, (tag, kind) in TARGET_KINDS.items()}


def _target_pairs(element: etree._Element):
    for child in element:
        key, kind = _TARGET_BY_TAG[child.tag]
        yield key, kind.decode(child)


def group_targets(targets: list[dict]) -> dict[str, list]:
    """``[{'ven_id': 'a'}, {'ven_id': 'b'}]`` -> ``{'ven_id': ['a', 'b']}``."""
    grouped: dict[str, list] = {}
    for target in targets:
        for key, value in target.items():
            if value is None:
                continue
            items = value if isinstance(value, list) else [value]
            grouped.setdefault(key, []).extend(items)
    return grouped


def _encode_grouped(element: etree._Element, grouped: dict[str, list]) -> None:
    unknown = set(grouped) - set(TARGET_KINDS)
    if unknown:
        raise EncodeError(f"unknown target type(s) {sorted(unknown)}; expected some of {list(TARGET_KINDS)}")
    for key, (tag, kind) in TARGET_KINDS.items():
        items = grouped.get(key)
        if items:
            try:
                encode_items(kind, element, tag, items)
            except EncodeError as exc:
                raise exc.under(key) from None


def _grouped_from(value: Any) -> dict[str, list]:
    if isinstance(value, dict):  # already by type
        return {k: (v if isinstance(v, list) else [v]) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        targets = []
        for index, target in enumerate(value):
            try:
                targets.append(as_mapping(target))
            except EncodeError:
                raise EncodeError(f"expected a dict such as {{'ven_id': '...'}}, not {type(target).__name__}",
                                  f"[{index}]") from None
        return group_targets(targets)
    raise EncodeError("expected a list of targets such as [{'ven_id': '...'}]")


class Targets(Kind):
    """``ei:eiTarget`` flattened into its parent as ``targets`` (a list of single-key dicts, in
    document order) and ``targets_by_type`` (``{'ven_id': [...], ...}``). When encoding either
    key may be given; ``targets`` wins."""

    def decode(self, element):
        targets = [{key: value} for key, value in _target_pairs(element)]
        return {"targets": targets, "targets_by_type": group_targets(targets)}

    def encode(self, parent, tag, value):
        element = SubElement(parent, tag)
        key = "targets" if value.get("targets") is not None else "targets_by_type"
        try:
            _encode_grouped(element, _grouped_from(value.get(key) or {}))
        except EncodeError as exc:
            raise exc.under(key) from None

    def present(self, payload: dict) -> bool:
        return payload.get("targets") is not None or payload.get("targets_by_type") is not None


class TargetList(Kind):
    """An EiTargetType element kept under its own key as a list of single-key dicts
    (``oadrDeviceClass`` -> ``device_class``)."""

    def decode(self, element):
        return [{key: value} for key, value in _target_pairs(element)]

    def encode(self, parent, tag, value):
        _encode_grouped(SubElement(parent, tag), _grouped_from(value))


class TargetDict(Kind):
    """An EiTargetType element as one flat dict, as OpenLEADR writes ``report_subject`` and
    ``report_data_source``: ``{'resource_id': 'dev1'}``; a type that repeats maps to a list."""

    def decode(self, element):
        result: dict[str, Any] = {}
        for key, value in _target_pairs(element):
            if key in result:
                previous = result[key]
                result[key] = (previous if isinstance(previous, list) else [previous]) + [value]
            else:
                result[key] = value
        return result

    def encode(self, parent, tag, value):
        try:
            value = as_mapping(value)
        except EncodeError:
            raise EncodeError("expected a dict such as {'resource_id': '...'}") from None
        _encode_grouped(SubElement(parent, tag), _grouped_from(value))


# ---------------------------------------------------------------------------------------------
# Item bases (emix:itemBase substitution group): the unit of a signal or a report.

#: measurement name -> namespace of its element (OpenADR 2.0b, Table "itemBase").
MEASUREMENT_NAMESPACES = {
    "voltage": NS_POWER, "energyApparent": NS_POWER, "energyReactive": NS_POWER,
    "energyReal": NS_POWER, "powerApparent": NS_POWER, "powerReactive": NS_POWER,
    "powerReal": NS_POWER, "customUnit": NS_OADR, "current": NS_OADR, "currency": NS_OADR,
    "currencyPerKWh": NS_OADR, "currencyPerKW": NS_OADR, "currencyPerThm": NS_OADR,
    "frequency": NS_OADR, "Therm": NS_OADR, "temperature": NS_OADR, "pulseCount": NS_OADR,
    "oadrGBDataDescription": NS_OADR,
}
# power:powerItem and power:energyItem are concrete elements of abstract types: a document may
# use them with xsi:type naming the concrete type, e.g. <power:powerItem xsi:type="power:PowerRealType">.
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_ITEM_HEADS = {q(NS_POWER, "powerItem"): "power:powerItem", q(NS_POWER, "energyItem"): "power:energyItem"}
_MEASUREMENT_OF_TYPE = {
    (NS_POWER, f"{name[0].upper()}{name[1:]}Type"): name
    for name in ("powerApparent", "powerReactive", "powerReal", "energyApparent", "energyReactive", "energyReal")}
MEASUREMENT_TAGS = tuple(q(ns, name) for name, ns in MEASUREMENT_NAMESPACES.items()) + tuple(_ITEM_HEADS)
_POWER_ITEMS = {"powerApparent", "powerReactive", "powerReal"}
_POWER_ATTRIBUTES = Spec("powerAttributes", [
    Field("hertz", q(NS_POWER, "hertz"), DECIMAL, required=True),
    Field("voltage", q(NS_POWER, "voltage"), DECIMAL, required=True),
    Field("ac", q(NS_POWER, "ac"), BOOL, required=True),
])
_SCALE = q(NS_SCALE, "siScaleCode")
_PULSE_FACTOR = q(NS_OADR, "pulseFactor")
_POWER_ATTRIBUTES_TAG = q(NS_POWER, "powerAttributes")
_FEED = q(NS_ATOM, "feed")


def _feed_text(element: etree._Element) -> str:
    # A copy carries every namespace declared above it; keep only those the feed uses.
    feed = copy.deepcopy(element)
    etree.cleanup_namespaces(feed)
    return etree.tostring(feed, encoding="unicode")


def _append_feed(parent: etree._Element, text: Any) -> None:
    if isinstance(text, etree._Element):
        parent.append(text)
        return
    if not isinstance(text, (str, bytes)):
        raise EncodeError("expected the atom:feed document as a string")
    try:
        feed = etree.fromstring(text.encode() if isinstance(text, str) else text, plain_parser())
    except etree.XMLSyntaxError as exc:
        raise EncodeError(f"not well-formed XML: {exc}") from None
    parent.append(feed)


def _with_key(key: str, function, *args) -> None:
    try:
        function(*args)
    except EncodeError as exc:
        raise exc.under(key) from None


class Measurement(Kind):
    """An item base as ``{'name': 'powerReal', 'description': 'RealPower', 'unit': 'W',
    'scale': 'k', 'power_attributes': {'hertz': 60, 'voltage': 120, 'ac': True}}``;
    ``pulse_factor`` for pulseCount, ``feed`` (atom XML text) for oadrGBDataDescription."""

    def decode(self, element):
        tag = element.tag
        name = _measurement_of_head(element) if tag in _ITEM_HEADS else tag[tag.index("}") + 1:]
        result: dict[str, Any] = {"name": name}
        for child in element:
            name = child.tag[child.tag.index("}") + 1:]
            if name == "itemDescription":
                result["description"] = child.text or ""
            elif name == "itemUnits":
                result["unit"] = child.text or ""
            elif name == "siScaleCode":
                result["scale"] = child.text or ""
            elif name == "powerAttributes":
                result["power_attributes"] = _POWER_ATTRIBUTES.decode(child)
            elif name == "pulseFactor":
                result["pulse_factor"] = values.parse_float(child.text)
            elif name == "feed":
                result["feed"] = _feed_text(child)
        return result

    def encode(self, parent, tag, value):
        value = as_mapping(value)
        name = value.get("name")
        namespace = MEASUREMENT_NAMESPACES.get(name) if isinstance(name, str) else None
        if namespace is None:
            raise EncodeError(f"unknown measurement {name!r}; expected one of "
                              f"{sorted(MEASUREMENT_NAMESPACES)} (use 'customUnit' for others)", "name")
        element = SubElement(parent, q(namespace, name))
        if name == "oadrGBDataDescription":
            _with_key("feed", _append_feed, element, value.get("feed"))
            return
        for key, local in (("description", "itemDescription"), ("unit", "itemUnits")):
            if value.get(key) is None:
                raise EncodeError(f"required for measurement {name!r}", key)
            _with_key(key, STR.encode, element, q(namespace, local), value[key])
        if name == "pulseCount":
            _with_key("pulse_factor", FLOAT.encode, element, _PULSE_FACTOR, value.get("pulse_factor", 1.0))
            return
        _with_key("scale", STR.encode, element, _SCALE, value.get("scale") or "none")
        if name in _POWER_ITEMS:
            attributes = value.get("power_attributes")
            if attributes is None:
                raise EncodeError(f"required for {name!r} ({{'hertz': 60, 'voltage': 120, 'ac': True}})",
                                  "power_attributes")
            _with_key("power_attributes", _POWER_ATTRIBUTES.encode,
                      SubElement(element, _POWER_ATTRIBUTES_TAG), attributes)


def _measurement_of_head(element: etree._Element) -> str:
    """``powerReal`` for ``<power:powerItem xsi:type="power:PowerRealType">``: the concrete
    measurement the type stands for, written back as its own element."""
    declared = (element.get(_XSI_TYPE) or "").strip()
    prefix, _, local = declared.rpartition(":")
    name = _MEASUREMENT_OF_TYPE.get((element.nsmap.get(prefix or None), local))
    if name is None:  # the schema only lets the six concrete types through; stay explicit anyway
        raise DecodeError(f"xsi:type {declared!r} on {_ITEM_HEADS[element.tag]} names no measurement; expected "
                          f"one of {', '.join(sorted(f'power:{t}' for _, t in _MEASUREMENT_OF_TYPE))}", element)
    return name


class Feed(Kind):
    """An element holding one ``atom:feed`` (Green Button data), kept as XML text."""

    def decode(self, element):
        return _feed_text(element[0])

    def encode(self, parent, tag, value):
        _append_feed(SubElement(parent, tag), value)


# ---------------------------------------------------------------------------------------------
# Payload bases (ei:payloadBase): a float, or an oadrPayloadResourceStatus dict.

def _limits(name: str) -> Field:
    spec = Spec(name, [
        Field("min", q(NS_OADR, "oadrMin"), FLOAT),
        Field("max", q(NS_OADR, "oadrMax"), FLOAT),
        Field("current", q(NS_OADR, "oadrCurrent"), FLOAT, required=True),
        Field("normal", q(NS_OADR, "oadrNormal"), FLOAT),
    ])
    key = {"oadrCapacity": "capacity", "oadrLevelOffset": "level_offset",
           "oadrPercentOffset": "percent_offset", "oadrSetPoint": "set_point"}[name]
    return Field(key, q(NS_OADR, name), Nested(spec))


RESOURCE_STATUS = Spec("oadrPayloadResourceStatus", [
    Field("online", q(NS_OADR, "oadrOnline"), BOOL, required=True),
    Field("manual_override", q(NS_OADR, "oadrManualOverride"), BOOL, required=True),
    Field("load_control_state", q(NS_OADR, "oadrLoadControlState"), Nested(Spec("oadrLoadControlState", [
        _limits("oadrCapacity"), _limits("oadrLevelOffset"), _limits("oadrPercentOffset"),
        _limits("oadrSetPoint")]))),
])
_PAYLOAD_FLOAT = q(NS_EI, "payloadFloat")
_VALUE = q(NS_EI, "value")
_RESOURCE_STATUS = q(NS_OADR, "oadrPayloadResourceStatus")
FLOAT_PAYLOAD = Wrapped(_VALUE, FLOAT)


class PayloadBase(Kind):
    """``ei:signalPayload``: a float for payloadFloat, a dict for a resource status."""

    def decode(self, element):
        child = element[0]
        if child.tag == _PAYLOAD_FLOAT:
            return values.parse_float(child[0].text)
        return RESOURCE_STATUS.decode(child)

    def encode(self, parent, tag, value):
        element = SubElement(parent, tag)
        if isinstance(value, (int, float)):
            FLOAT_PAYLOAD.encode(element, _PAYLOAD_FLOAT, value)
        else:
            RESOURCE_STATUS.encode(SubElement(element, _RESOURCE_STATUS), value)


class PendingReports(Kind):
    """``oadrPendingReports`` -> ``[{'report_request_id': '...'}, ...]`` (strings accepted too)."""

    def decode(self, element):
        return [{"report_request_id": child.text or ""} for child in element]

    def encode(self, parent, tag, value):
        element = SubElement(parent, tag)
        if not isinstance(value, (list, tuple)):
            raise EncodeError("expected a list of {'report_request_id': ...}")
        ids = [item.get("report_request_id") if isinstance(item, dict) else item for item in value]
        encode_items(STR, element, q(NS_EI, "reportRequestID"), ids)


def _parse_test_event(text: str) -> bool | str:
    # Rule 006 of the 2.0b profile: any value other than 'false' marks a test event.
    stripped = text.strip()
    if stripped == "false":
        return False
    if stripped == "true":
        return True
    return text


def _format_test_event(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    raise TypeError(f"expected True, False or a string, not {value!r}")


TEST_EVENT = Text(_parse_test_event, _format_test_event)
