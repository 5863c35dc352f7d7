"""Dataclasses users may pass to the codec and the VTN instead of dicts.

They mirror OpenLEADR's ``openleadr.objects`` (same names, same fields), so code written for
OpenLEADR keeps working. Fields left at ``None`` are simply not written. Unlike OpenLEADR's,
these classes do no I/O and no hidden clock reads except the documented defaults below.

>>> from datetime import datetime, timedelta, timezone
>>> start = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
>>> signal = EventSignal(intervals=[Interval(dtstart=start, duration=timedelta(minutes=10), signal_payload=1.0)],
...                      signal_name='SIMPLE', signal_type='level', signal_id='sig1')
>>> event = Event(event_descriptor=EventDescriptor(event_id='ev1', modification_number=0,
...               market_context='http://marketcontext01', event_status='far', created_date_time=start),
...               event_signals=[signal], targets=[Target(ven_id='ven123')])
>>> event.active_period.duration
datetime.timedelta(seconds=600)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Union


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class AggregatedPNode:
    node: str


@dataclass
class EndDeviceAsset:
    mrid: str


@dataclass
class MeterAsset:
    mrid: str


@dataclass
class PNode:
    node: str


@dataclass
class ServiceDeliveryPoint:
    node: str


@dataclass
class TransportInterface:
    point_of_receipt: str
    point_of_delivery: str


@dataclass
class Target:
    """One or more targets; every field that is set becomes one target element."""
    aggregated_p_node: Optional[Union[AggregatedPNode, dict]] = None
    end_device_asset: Optional[Union[EndDeviceAsset, dict]] = None
    meter_asset: Optional[Union[MeterAsset, dict]] = None
    p_node: Optional[Union[PNode, dict]] = None
    service_area: Optional[dict] = None
    service_delivery_point: Optional[Union[ServiceDeliveryPoint, dict]] = None
    service_location: Optional[dict] = None
    transport_interface: Optional[Union[TransportInterface, dict]] = None
    group_id: Optional[str] = None
    group_name: Optional[str] = None
    resource_id: Optional[str] = None
    ven_id: Optional[str] = None
    party_id: Optional[str] = None


@dataclass
class Response:
    response_code: int
    response_description: Optional[str] = None
    request_id: Optional[str] = None


@dataclass
class EventDescriptor:
    event_id: str
    modification_number: int
    market_context: str
    event_status: str
    created_date_time: datetime = field(default_factory=_utcnow)
    modification_date_time: Optional[datetime] = None
    modification_reason: Optional[str] = None
    priority: Optional[int] = None
    test_event: Optional[Union[bool, str]] = None
    vtn_comment: Optional[str] = None


@dataclass
class ActivePeriod:
    dtstart: datetime
    duration: timedelta
    tolerance: Optional[dict] = None
    notification_period: Optional[timedelta] = None
    ramp_up_period: Optional[timedelta] = None
    recovery_period: Optional[timedelta] = None


@dataclass
class Interval:
    """One interval of a signal or baseline: ``signal_payload``, or ``signal_payloads`` when it
    carries several (the schema allows any number), never both."""
    dtstart: Optional[datetime] = None
    duration: Optional[timedelta] = None
    signal_payload: Optional[Union[float, dict]] = None
    uid: Optional[str] = None
    signal_payloads: Optional[List[Union[float, dict]]] = None

    def __post_init__(self) -> None:
        _one_or_list(self, "signal_payload", "signal_payloads")


@dataclass
class PowerAttributes:
    hertz: float = 60
    voltage: float = 120
    ac: bool = True


@dataclass
class Measurement:
    """An OpenADR item base (the unit of a signal or a report reading)."""
    name: str
    description: Optional[str] = None
    unit: Optional[str] = None
    scale: Optional[str] = None
    power_attributes: Optional[Union[PowerAttributes, dict]] = None
    pulse_factor: Optional[float] = None


@dataclass
class EventSignal:
    intervals: List[Union[Interval, dict]]
    signal_name: str
    signal_type: str
    signal_id: str
    current_value: Optional[float] = None
    targets: Optional[List[Union[Target, dict]]] = None
    measurement: Optional[Union[Measurement, dict]] = None
    targets_by_type: Optional[Dict[str, list]] = None


@dataclass
class EventBaseline:
    dtstart: datetime
    duration: timedelta
    intervals: List[Union[Interval, dict]]
    baseline_id: str
    baseline_name: str
    resource_ids: Optional[List[str]] = None
    measurement: Optional[Union[Measurement, dict]] = None


@dataclass
class Event:
    """An OpenADR event. Without ``active_period``, it spans the signals' intervals."""
    event_descriptor: Union[EventDescriptor, dict]
    event_signals: List[Union[EventSignal, dict]]
    targets: Optional[List[Union[Target, dict]]] = None
    targets_by_type: Optional[Dict[str, list]] = None
    active_period: Optional[Union[ActivePeriod, dict]] = None
    event_baseline: Optional[Union[EventBaseline, dict]] = None
    response_required: str = "always"

    def __post_init__(self) -> None:
        if self.active_period is None:
            self.active_period = _span_of(self.event_signals)
        if self.targets is None and self.targets_by_type is None:
            raise ValueError("an Event needs 'targets' (or 'targets_by_type'), e.g. [Target(ven_id='ven123')]")


def _one_or_list(obj: Any, single: str, plural: str) -> None:
    # The codec refuses both too; saying it here points at the line that built the object.
    if getattr(obj, single) is not None and getattr(obj, plural) is not None:
        raise ValueError(f"give either {single} (one) or {plural} (a list), not both")


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name)


def _span_of(signals: List[Any]) -> ActivePeriod:
    starts, ends = [], []
    for signal in signals:
        for interval in _get(signal, "intervals"):
            start, duration = _get(interval, "dtstart"), _get(interval, "duration")
            if start is None or duration is None:
                raise ValueError("give the Event an active_period, or dtstart and duration on every interval")
            starts.append(start)
            ends.append(start + duration)
    if not starts:
        raise ValueError("an Event needs at least one signal with at least one interval")
    return ActivePeriod(dtstart=min(starts), duration=max(ends) - min(starts))


@dataclass
class SamplingRate:
    min_period: timedelta
    max_period: timedelta
    on_change: bool = False


@dataclass
class ReportDescription:
    r_id: str
    reading_type: str
    report_type: str
    market_context: Optional[str] = None
    report_subject: Optional[Union[Target, dict]] = None
    report_data_source: Optional[Union[Target, dict]] = None
    sampling_rate: Optional[Union[SamplingRate, dict]] = None
    measurement: Optional[Union[Measurement, dict]] = None


@dataclass
class ReportPayload:
    r_id: str
    value: Optional[float] = None
    confidence: Optional[int] = None
    accuracy: Optional[float] = None
    resource_status: Optional[dict] = None
    data_quality: Optional[str] = None


@dataclass
class ReportInterval:
    """One interval of a report: ``report_payload`` or a list in ``report_payloads``, and/or
    Green Button data as ``greenbutton_feed`` (atom XML text) or ``greenbutton_feeds``."""
    dtstart: datetime
    report_payload: Optional[Union[ReportPayload, dict]] = None
    duration: Optional[timedelta] = None
    uid: Optional[str] = None
    report_payloads: Optional[List[Union[ReportPayload, dict]]] = None
    greenbutton_feed: Optional[str] = None
    greenbutton_feeds: Optional[List[str]] = None

    def __post_init__(self) -> None:
        _one_or_list(self, "report_payload", "report_payloads")
        _one_or_list(self, "greenbutton_feed", "greenbutton_feeds")
        if all(getattr(self, name) is None for name in
               ("report_payload", "report_payloads", "greenbutton_feed", "greenbutton_feeds")):
            raise ValueError("a ReportInterval needs report_payload (or report_payloads, or Green Button data)")


@dataclass
class Report:
    report_specifier_id: str
    report_name: Optional[str] = None
    report_request_id: Optional[str] = None
    report_id: Optional[str] = None
    report_descriptions: Optional[List[Union[ReportDescription, dict]]] = None
    created_date_time: datetime = field(default_factory=_utcnow)
    dtstart: Optional[datetime] = None
    duration: Optional[timedelta] = None
    intervals: Optional[List[Union[ReportInterval, dict]]] = None


@dataclass
class SpecifierPayload:
    r_id: str
    reading_type: str
    measurement: Optional[Union[Measurement, dict]] = None


@dataclass
class ReportSpecifier:
    report_specifier_id: str
    granularity: timedelta
    specifier_payloads: List[Union[SpecifierPayload, dict]]
    report_back_duration: timedelta = timedelta(0)
    report_interval: Optional[dict] = None


@dataclass
class ReportRequest:
    report_request_id: str
    report_specifier: Union[ReportSpecifier, dict]


@dataclass
class VavailabilityComponent:
    dtstart: datetime
    duration: timedelta
    tolerance: Optional[dict] = None
    notification_period: Optional[timedelta] = None
    ramp_up_period: Optional[timedelta] = None
    recovery_period: Optional[timedelta] = None


@dataclass
class Vavailability:
    components: List[Union[VavailabilityComponent, dict]]


@dataclass
class Opt:
    """An ``oadrCreateOpt``: the schema requires ``opt_id``, ``ven_id``, ``request_id`` and
    ``targets`` (or ``targets_by_type``) by the time it is written."""
    opt_type: str
    opt_reason: str
    opt_id: Optional[str] = None
    ven_id: Optional[str] = None
    created_date_time: datetime = field(default_factory=_utcnow)
    event_id: Optional[str] = None
    modification_number: Optional[int] = None
    vavailability: Optional[Union[Vavailability, dict]] = None
    targets: Optional[List[Union[Target, dict]]] = None
    market_context: Optional[str] = None
    device_class: Optional[List[Union[Target, dict]]] = None
    request_id: Optional[str] = None
    targets_by_type: Optional[Dict[str, list]] = None
