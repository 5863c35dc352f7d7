"""The 23 OpenADR 2.0b messages, as ordered specs of their elements.

Read a spec top to bottom and you read the schema's sequence for that element, with the
payload key each element becomes. Keys follow OpenLEADR's representation (snake_case,
pluralised lists, ``qualifiedEventID`` flattened into ``event_id`` + ``modification_number``),
with identifiers always strings.
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..schema import NS_EI, NS_EMIX, NS_OADR, NS_PYLD, NS_STRM, NS_XCAL
from .kinds import (FLOAT_PAYLOAD, MEASUREMENT_TAGS, RESOURCE_STATUS, TEST_EVENT, Feed, Measurement,
                    PayloadBase, PendingReports, TargetDict, TargetList, Targets)
from .spec import (BOOL, DATETIME, DURATION, FLOAT, ID, INT, RESPONSE_CODE, STR, TOKEN, Field, Nested, Spec, Wrapped,
                   WrappedList, q)


def ei(name: str) -> str:
    return q(NS_EI, name)


def oadr(name: str) -> str:
    return q(NS_OADR, name)


def pyld(name: str) -> str:
    return q(NS_PYLD, name)


def xcal(name: str) -> str:
    return q(NS_XCAL, name)


DTSTART = Wrapped(xcal("date-time"), DATETIME)
DURATION_PROP = Wrapped(xcal("duration"), DURATION)
MEASUREMENT = Measurement()


def measurement_field() -> Field:
    """The optional ``emix:itemBase`` of a signal, baseline or report description."""
    return Field("measurement", MEASUREMENT_TAGS[0], MEASUREMENT, extra_tags=MEASUREMENT_TAGS[1:])


def flatten(tag: str, spec: Spec, required: bool = True) -> Field:
    """A child whose own keys are merged into the parent's dict."""
    return Field(None, tag, Nested(spec), required=required, flatten=True)


def targets_field(required: bool = True) -> Field:
    return Field(None, ei("eiTarget"), Targets(), required=required, flatten=True)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _with_defaults(**defaults):
    """A before-encode hook that fills missing keys (callables are called)."""
    def fill(payload: dict) -> dict:
        missing = {k: (v() if callable(v) else v) for k, v in defaults.items() if payload.get(k) is None}
        return {**payload, **missing} if missing else payload
    return fill


# --- common ---------------------------------------------------------------------------------

RESPONSE = Spec("eiResponse", [
    Field("response_code", ei("responseCode"), RESPONSE_CODE, required=True),
    Field("response_description", ei("responseDescription"), STR),
    # requestID is required by the schema but may be empty: None <-> <requestID/>.
    Field("request_id", pyld("requestID"), ID),
], before_encode=_with_defaults(request_id=""))
RESPONSE_FIELD = Field("response", ei("eiResponse"), Nested(RESPONSE), required=True)

QUALIFIED_EVENT_ID = Spec("qualifiedEventID", [
    Field("event_id", ei("eventID"), STR, required=True),
    Field("modification_number", ei("modificationNumber"), INT, required=True),
])

PROPERTIES = Spec("properties", [
    Field("dtstart", xcal("dtstart"), DTSTART, required=True),
    Field("duration", xcal("duration"), DURATION_PROP, required=True),
    Field("tolerance", xcal("tolerance"), Nested(Spec("tolerance", [
        Field("tolerate", xcal("tolerate"), Nested(Spec("tolerate", [
            Field("startafter", xcal("startafter"), DURATION)])), required=True)]))),
    Field("notification_period", ei("x-eiNotification"), DURATION_PROP),
    Field("ramp_up_period", ei("x-eiRampUp"), DURATION_PROP),
    Field("recovery_period", ei("x-eiRecovery"), DURATION_PROP),
])

INTERVAL = Spec("interval", [
    Field("dtstart", xcal("dtstart"), DTSTART),
    Field("duration", xcal("duration"), DURATION_PROP),
    Field("uid", xcal("uid"), Wrapped(xcal("text"), STR)),
    Field("signal_payload", ei("signalPayload"), PayloadBase(), plural="signal_payloads"),
    Field("report_payload", oadr("oadrReportPayload"), Nested(Spec("oadrReportPayload", [
        Field("r_id", ei("rID"), STR, required=True),
        Field("confidence", ei("confidence"), INT),
        Field("accuracy", ei("accuracy"), FLOAT),
        Field("value", ei("payloadFloat"), FLOAT_PAYLOAD),
        Field("resource_status", oadr("oadrPayloadResourceStatus"), Nested(RESOURCE_STATUS)),
        Field("data_quality", oadr("oadrDataQuality"), TOKEN),
    ])), plural="report_payloads"),
    Field("greenbutton_feed", oadr("oadrGBPayload"), Feed(), plural="greenbutton_feeds"),
])
INTERVALS = WrappedList(ei("interval"), Nested(INTERVAL))

# --- events -----------------------------------------------------------------------------------

EVENT_DESCRIPTOR = Spec("eventDescriptor", [
    Field("event_id", ei("eventID"), STR, required=True),
    Field("modification_number", ei("modificationNumber"), INT, required=True),
    Field("modification_date_time", ei("modificationDateTime"), DATETIME),
    Field("modification_reason", ei("modificationReason"), STR),
    Field("priority", ei("priority"), INT),
    Field("market_context", ei("eiMarketContext"), Wrapped(q(NS_EMIX, "marketContext"), TOKEN), required=True),
    Field("created_date_time", ei("createdDateTime"), DATETIME, required=True),
    Field("event_status", ei("eventStatus"), TOKEN, required=True),
    Field("test_event", ei("testEvent"), TEST_EVENT),
    Field("vtn_comment", ei("vtnComment"), STR),
], before_encode=_with_defaults(modification_number=0, created_date_time=_now))

ACTIVE_PERIOD = Spec("eiActivePeriod", [flatten(xcal("properties"), PROPERTIES)],
                     constant_children=[xcal("components")])

EVENT_SIGNAL = Spec("eiEventSignal", [
    Field("intervals", q(NS_STRM, "intervals"), INTERVALS, required=True),
    targets_field(required=False),
    Field("signal_name", ei("signalName"), TOKEN, required=True),
    Field("signal_type", ei("signalType"), TOKEN, required=True),
    Field("signal_id", ei("signalID"), STR, required=True),
    measurement_field(),
    Field("current_value", ei("currentValue"), Wrapped(ei("payloadFloat"), FLOAT_PAYLOAD)),
])

EVENT_BASELINE = Spec("eiEventBaseline", [
    Field("dtstart", xcal("dtstart"), DTSTART, required=True),
    Field("duration", xcal("duration"), DURATION_PROP, required=True),
    Field("intervals", q(NS_STRM, "intervals"), INTERVALS, required=True),
    Field("baseline_id", ei("baselineID"), STR, required=True),
    Field("resource_ids", ei("resourceID"), STR, repeated=True),
    Field("baseline_name", ei("baselineName"), STR, required=True),
    measurement_field(),
])

EVENT_SIGNALS = Spec("eiEventSignals", [
    Field("event_signals", ei("eiEventSignal"), Nested(EVENT_SIGNAL), repeated=True),
    Field("event_baseline", ei("eiEventBaseline"), Nested(EVENT_BASELINE)),
])

EVENT = Spec("oadrEvent", [
    flatten(ei("eiEvent"), Spec("eiEvent", [
        Field("event_descriptor", ei("eventDescriptor"), Nested(EVENT_DESCRIPTOR), required=True),
        Field("active_period", ei("eiActivePeriod"), Nested(ACTIVE_PERIOD), required=True),
        flatten(ei("eiEventSignals"), EVENT_SIGNALS),
        targets_field(required=True),
    ])),
    Field("response_required", oadr("oadrResponseRequired"), TOKEN, required=True),
], before_encode=_with_defaults(response_required="always"))

EVENT_RESPONSE = Spec("eventResponse", [
    Field("response_code", ei("responseCode"), RESPONSE_CODE, required=True),
    Field("response_description", ei("responseDescription"), STR),
    Field("request_id", pyld("requestID"), ID),
    flatten(ei("qualifiedEventID"), QUALIFIED_EVENT_ID),
    Field("opt_type", ei("optType"), TOKEN, required=True),
], before_encode=_with_defaults(request_id=""))

# --- reports ----------------------------------------------------------------------------------

SAMPLING_RATE = Spec("oadrSamplingRate", [
    Field("min_period", oadr("oadrMinPeriod"), DURATION, required=True),
    Field("max_period", oadr("oadrMaxPeriod"), DURATION, required=True),
    Field("on_change", oadr("oadrOnChange"), BOOL, required=True),
], before_encode=_with_defaults(on_change=False))

REPORT_DESCRIPTION = Spec("oadrReportDescription", [
    Field("r_id", ei("rID"), STR, required=True),
    Field("report_subject", ei("reportSubject"), TargetDict()),
    Field("report_data_source", ei("reportDataSource"), TargetDict()),
    Field("report_type", ei("reportType"), TOKEN, required=True),
    measurement_field(),
    Field("reading_type", ei("readingType"), TOKEN, required=True),
    Field("market_context", q(NS_EMIX, "marketContext"), TOKEN),
    Field("sampling_rate", oadr("oadrSamplingRate"), Nested(SAMPLING_RATE)),
])

REPORT = Spec("oadrReport", [
    Field("dtstart", xcal("dtstart"), DTSTART),
    Field("duration", xcal("duration"), DURATION_PROP),
    Field("intervals", q(NS_STRM, "intervals"), INTERVALS),
    Field("report_id", ei("eiReportID"), STR),
    Field("report_descriptions", oadr("oadrReportDescription"), Nested(REPORT_DESCRIPTION), repeated=True),
    # Unsolicited reports (METADATA in oadrRegisterReport) carry reportRequestID 0.
    Field("report_request_id", ei("reportRequestID"), STR, required=True),
    Field("report_specifier_id", ei("reportSpecifierID"), STR, required=True),
    Field("report_name", ei("reportName"), TOKEN),
    Field("created_date_time", ei("createdDateTime"), DATETIME, required=True),
], before_encode=_with_defaults(report_request_id="0", created_date_time=_now))

REPORT_SPECIFIER = Spec("reportSpecifier", [
    Field("report_specifier_id", ei("reportSpecifierID"), STR, required=True),
    Field("granularity", xcal("granularity"), DURATION_PROP, required=True),
    Field("report_back_duration", ei("reportBackDuration"), DURATION_PROP, required=True),
    Field("report_interval", ei("reportInterval"), Nested(Spec("reportInterval", [
        flatten(xcal("properties"), PROPERTIES)]))),
    Field("specifier_payloads", ei("specifierPayload"), Nested(Spec("specifierPayload", [
        Field("r_id", ei("rID"), STR, required=True),
        measurement_field(),
        Field("reading_type", ei("readingType"), TOKEN, required=True),
    ])), repeated=True),
])

REPORT_REQUEST = Spec("oadrReportRequest", [
    Field("report_request_id", ei("reportRequestID"), STR, required=True),
    Field("report_specifier", ei("reportSpecifier"), Nested(REPORT_SPECIFIER), required=True),
])


def _cancel_report_ids(payload: dict) -> None:
    # OpenLEADR handlers read 'report_request_id' (one id); the schema allows several.
    ids = payload.get("report_request_ids") or []
    if ids:
        payload["report_request_id"] = ids[0]


_REPORT_TO_FOLLOW_DEFAULT = _with_defaults(report_to_follow=False)


def _cancel_report_before_encode(payload: dict) -> dict:
    if payload.get("report_request_ids") is None and payload.get("report_request_id") is not None:
        single = payload["report_request_id"]
        payload = {**payload, "report_request_ids": single if isinstance(single, list) else [single]}
    return _REPORT_TO_FOLLOW_DEFAULT(payload)


CANCEL_REPORT = Spec("oadrCancelReport", [
    Field("request_id", pyld("requestID"), STR, required=True),
    Field("report_request_ids", ei("reportRequestID"), STR, repeated=True),
    Field("report_to_follow", pyld("reportToFollow"), BOOL, required=True),
    Field("ven_id", ei("venID"), STR),
], after_decode=_cancel_report_ids, before_encode=_cancel_report_before_encode)

PENDING_REPORTS = Field("pending_reports", oadr("oadrPendingReports"), PendingReports(), required=True)


_pending_default = _with_defaults(pending_reports=list)

# --- opt --------------------------------------------------------------------------------------

VAVAILABILITY = Spec("vavailability", [
    Field("components", xcal("components"), WrappedList(xcal("available"), Nested(Spec("available", [
        flatten(xcal("properties"), PROPERTIES)]))), required=True),
])

# --- registration -----------------------------------------------------------------------------

INFO = Spec("oadrInfo", [
    Field("key", oadr("oadrKey"), STR, required=True),
    Field("value", oadr("oadrValue"), STR, required=True),
])

PROFILE = Spec("oadrProfile", [
    Field("profile_name", oadr("oadrProfileName"), TOKEN, required=True),
    Field("transports", oadr("oadrTransports"), WrappedList(oadr("oadrTransport"), Nested(Spec(
        "oadrTransport", [Field("transport_name", oadr("oadrTransportName"), TOKEN, required=True)]))),
        required=True),
])

# --- the 23 messages --------------------------------------------------------------------------

MESSAGES: dict[str, Spec] = {
    "oadrDistributeEvent": Spec("oadrDistributeEvent", [
        Field("response", ei("eiResponse"), Nested(RESPONSE)),
        Field("request_id", pyld("requestID"), STR, required=True),
        Field("vtn_id", ei("vtnID"), STR, required=True),
        Field("events", oadr("oadrEvent"), Nested(EVENT), repeated=True),
    ]),
    "oadrCreatedEvent": Spec("oadrCreatedEvent", [flatten(pyld("eiCreatedEvent"), Spec("eiCreatedEvent", [
        RESPONSE_FIELD,
        Field("event_responses", ei("eventResponses"), WrappedList(ei("eventResponse"), Nested(EVENT_RESPONSE))),
        Field("ven_id", ei("venID"), STR, required=True),
    ]))]),
    "oadrRequestEvent": Spec("oadrRequestEvent", [flatten(pyld("eiRequestEvent"), Spec("eiRequestEvent", [
        Field("request_id", pyld("requestID"), STR, required=True),
        Field("ven_id", ei("venID"), STR, required=True),
        Field("reply_limit", pyld("replyLimit"), INT),
    ]))]),
    "oadrResponse": Spec("oadrResponse", [RESPONSE_FIELD, Field("ven_id", ei("venID"), STR)]),
    "oadrCancelOpt": Spec("oadrCancelOpt", [
        Field("request_id", pyld("requestID"), STR, required=True),
        Field("opt_id", ei("optID"), STR, required=True),
        Field("ven_id", ei("venID"), STR, required=True),
    ]),
    "oadrCanceledOpt": Spec("oadrCanceledOpt", [RESPONSE_FIELD, Field("opt_id", ei("optID"), STR)]),
    "oadrCreateOpt": Spec("oadrCreateOpt", [
        Field("opt_id", ei("optID"), STR, required=True),
        Field("opt_type", ei("optType"), TOKEN, required=True),
        Field("opt_reason", ei("optReason"), TOKEN, required=True),
        Field("market_context", q(NS_EMIX, "marketContext"), TOKEN),
        Field("ven_id", ei("venID"), STR, required=True),
        Field("vavailability", xcal("vavailability"), Nested(VAVAILABILITY)),
        Field("created_date_time", ei("createdDateTime"), DATETIME, required=True),
        Field("request_id", pyld("requestID"), STR, required=True),
        flatten(ei("qualifiedEventID"), QUALIFIED_EVENT_ID, required=False),
        targets_field(required=True),
        Field("device_class", oadr("oadrDeviceClass"), TargetList()),
    ], before_encode=_with_defaults(created_date_time=_now)),
    "oadrCreatedOpt": Spec("oadrCreatedOpt", [RESPONSE_FIELD, Field("opt_id", ei("optID"), STR, required=True)]),
    "oadrCancelReport": CANCEL_REPORT,
    "oadrCanceledReport": Spec("oadrCanceledReport", [
        RESPONSE_FIELD, PENDING_REPORTS, Field("ven_id", ei("venID"), STR),
    ], before_encode=_pending_default),
    "oadrCreateReport": Spec("oadrCreateReport", [
        Field("request_id", pyld("requestID"), STR, required=True),
        Field("report_requests", oadr("oadrReportRequest"), Nested(REPORT_REQUEST), repeated=True),
        Field("ven_id", ei("venID"), STR),
    ]),
    "oadrCreatedReport": Spec("oadrCreatedReport", [
        RESPONSE_FIELD, PENDING_REPORTS, Field("ven_id", ei("venID"), STR),
    ], before_encode=_pending_default),
    "oadrRegisterReport": Spec("oadrRegisterReport", [
        Field("request_id", pyld("requestID"), STR, required=True),
        Field("reports", oadr("oadrReport"), Nested(REPORT), repeated=True),
        Field("ven_id", ei("venID"), STR),
        Field("report_request_id", ei("reportRequestID"), STR),
    ]),
    "oadrRegisteredReport": Spec("oadrRegisteredReport", [
        RESPONSE_FIELD,
        Field("report_requests", oadr("oadrReportRequest"), Nested(REPORT_REQUEST), repeated=True),
        Field("ven_id", ei("venID"), STR),
    ]),
    "oadrUpdateReport": Spec("oadrUpdateReport", [
        Field("request_id", pyld("requestID"), STR, required=True),
        Field("reports", oadr("oadrReport"), Nested(REPORT), repeated=True),
        Field("ven_id", ei("venID"), STR),
    ]),
    "oadrUpdatedReport": Spec("oadrUpdatedReport", [
        RESPONSE_FIELD,
        Field("cancel_report", oadr("oadrCancelReport"), Nested(CANCEL_REPORT)),
        Field("ven_id", ei("venID"), STR),
    ]),
    "oadrCancelPartyRegistration": Spec("oadrCancelPartyRegistration", [
        Field("request_id", pyld("requestID"), STR, required=True),
        Field("registration_id", ei("registrationID"), STR, required=True),
        Field("ven_id", ei("venID"), STR),
    ]),
    "oadrCanceledPartyRegistration": Spec("oadrCanceledPartyRegistration", [
        RESPONSE_FIELD,
        Field("registration_id", ei("registrationID"), ID),
        Field("ven_id", ei("venID"), ID),
    ]),
    "oadrCreatePartyRegistration": Spec("oadrCreatePartyRegistration", [
        Field("request_id", pyld("requestID"), STR, required=True),
        Field("registration_id", ei("registrationID"), ID),
        Field("ven_id", ei("venID"), ID),
        Field("profile_name", oadr("oadrProfileName"), TOKEN, required=True),
        Field("transport_name", oadr("oadrTransportName"), TOKEN, required=True),
        Field("transport_address", oadr("oadrTransportAddress"), STR),
        Field("report_only", oadr("oadrReportOnly"), BOOL, required=True),
        Field("xml_signature", oadr("oadrXmlSignature"), BOOL, required=True),
        Field("ven_name", oadr("oadrVenName"), STR),
        Field("http_pull_model", oadr("oadrHttpPullModel"), BOOL),
    ], before_encode=_with_defaults(profile_name="2.0b", report_only=False, xml_signature=False)),
    "oadrCreatedPartyRegistration": Spec("oadrCreatedPartyRegistration", [
        RESPONSE_FIELD,
        Field("registration_id", ei("registrationID"), ID),
        Field("ven_id", ei("venID"), ID),
        Field("vtn_id", ei("vtnID"), STR, required=True),
        Field("profiles", oadr("oadrProfiles"), WrappedList(oadr("oadrProfile"), Nested(PROFILE)), required=True),
        Field("requested_oadr_poll_freq", oadr("oadrRequestedOadrPollFreq"), DURATION_PROP),
        Field("service_specific_info", oadr("oadrServiceSpecificInfo"), WrappedList(
            oadr("oadrService"), Nested(Spec("oadrService", [
                Field("service_name", oadr("oadrServiceName"), TOKEN, required=True),
                Field("info", oadr("oadrInfo"), Nested(INFO), repeated=True),
            ])))),
        Field("extensions", oadr("oadrExtensions"), WrappedList(
            oadr("oadrExtension"), Nested(Spec("oadrExtension", [
                Field("extension_name", oadr("oadrExtensionName"), STR, required=True),
                Field("info", oadr("oadrInfo"), Nested(INFO), repeated=True),
            ])))),
    ]),
    "oadrRequestReregistration": Spec("oadrRequestReregistration", [
        Field("ven_id", ei("venID"), STR, required=True)]),
    "oadrQueryRegistration": Spec("oadrQueryRegistration", [
        Field("request_id", pyld("requestID"), STR, required=True)]),
    "oadrPoll": Spec("oadrPoll", [Field("ven_id", ei("venID"), STR, required=True)]),
}
