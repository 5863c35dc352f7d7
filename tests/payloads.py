"""Payload catalogue: every OpenADR 2.0b message with its optional parts filled, and minimal.

Targets are listed in schema order (the order ``parse`` returns them in).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 23, 12, 0, 30, 250000, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)

RESPONSE = {"response_code": 200, "response_description": "OK", "request_id": "req-1"}
RESPONSE_MIN = {"response_code": 200, "request_id": None}

POLYGON = {"id": "fc1", "location": {"polygon": {"id": "p1", "exterior": {"linear_ring": {
    "pos_list": [52.1, 5.1, 52.2, 5.2, 52.1, 5.3, 52.1, 5.1]}}}}}

ALL_TARGETS = [
    {"aggregated_p_node": {"node": "apn1"}},
    {"end_device_asset": {"mrid": "Thermostat"}},
    {"meter_asset": {"mrid": "meter1"}},
    {"p_node": {"node": "pn1"}},
    {"service_area": {"feature_collection": POLYGON}},
    {"service_delivery_point": {"node": "sdp1"}},
    {"service_location": {"feature_collection": {"location": {"polygon": {"exterior": {
        "linear_ring": {"pos_list": [1.0, 2.0, 3.0, 4.0]}}}}}}},
    {"transport_interface": {"point_of_receipt": "a", "point_of_delivery": "b"}},
    {"group_id": "g1"}, {"group_id": "g2"},
    {"group_name": "North"},
    {"resource_id": "res1"},
    {"ven_id": "00123"},
    {"party_id": "party1"},
]


def by_type(targets: list[dict]) -> dict:
    grouped: dict = {}
    for target in targets:
        for key, value in target.items():
            grouped.setdefault(key, []).append(value)
    return grouped


POWER_REAL = {"name": "powerReal", "description": "RealPower", "unit": "W", "scale": "k",
              "power_attributes": {"hertz": 60, "voltage": 120.5, "ac": True}}
MEASUREMENTS = [
    POWER_REAL,
    {"name": "powerApparent", "description": "ApparentPower", "unit": "VA", "scale": "none",
     "power_attributes": {"hertz": 50, "voltage": 230, "ac": True}},
    {"name": "powerReactive", "description": "ReactivePower", "unit": "VAR", "scale": "M",
     "power_attributes": {"hertz": 50, "voltage": 230, "ac": False}},
    {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "k"},
    {"name": "energyApparent", "description": "ApparentEnergy", "unit": "VAh", "scale": "k"},
    {"name": "energyReactive", "description": "ReactiveEnergy", "unit": "VARh", "scale": "k"},
    {"name": "voltage", "description": "Voltage", "unit": "V", "scale": "none"},
    {"name": "current", "description": "Current", "unit": "A", "scale": "none"},
    {"name": "frequency", "description": "Frequency", "unit": "Hz", "scale": "none"},
    {"name": "temperature", "description": "temperature", "unit": "celsius", "scale": "none"},
    {"name": "Therm", "description": "Therm", "unit": "thm", "scale": "none"},
    {"name": "currency", "description": "currency", "unit": "EUR", "scale": "none"},
    {"name": "currencyPerKWh", "description": "currencyPerKWh", "unit": "USD", "scale": "none"},
    {"name": "currencyPerKW", "description": "currencyPerKW", "unit": "USD", "scale": "none"},
    {"name": "currencyPerThm", "description": "currency", "unit": "USD", "scale": "none"},
    {"name": "pulseCount", "description": "pulse count", "unit": "count", "pulse_factor": 1.5},
    {"name": "customUnit", "description": "thermostat state", "unit": "x-state", "scale": "none"},
]

EVENT_FULL = {
    "event_descriptor": {
        "event_id": "ev-00042", "modification_number": 3, "modification_date_time": T1,
        "modification_reason": "price update", "priority": 1, "market_context": "http://marketcontext01",
        "created_date_time": T0, "event_status": "near", "test_event": False,
        "vtn_comment": "A & B <x> \"quoted\" 'single' \u00e9\u00e8",
    },
    "active_period": {
        "dtstart": T0, "duration": 40 * MIN,
        "tolerance": {"tolerate": {"startafter": timedelta(seconds=30)}},
        "notification_period": timedelta(days=1), "ramp_up_period": 5 * MIN,
        "recovery_period": timedelta(hours=1, minutes=2, seconds=3),
    },
    "event_signals": [
        {"intervals": [{"dtstart": T0 + i * 10 * MIN, "duration": 10 * MIN, "uid": str(i),
                        "signal_payload": float(i) + 0.5} for i in range(4)],
         "targets": [{"end_device_asset": {"mrid": "Water_Heater"}}],
         "targets_by_type": {"end_device_asset": [{"mrid": "Water_Heater"}]},
         "signal_name": "ELECTRICITY_PRICE", "signal_type": "price", "signal_id": "sig-1",
         "measurement": {"name": "currencyPerKWh", "description": "currencyPerKWh", "unit": "EUR",
                         "scale": "none"},
         "current_value": 0.25},
        {"intervals": [{"duration": 40 * MIN, "signal_payload": {
            "online": True, "manual_override": False,
            "load_control_state": {"capacity": {"min": 0.0, "max": 10.0, "current": 5.0, "normal": 7.5},
                                   "set_point": {"current": 21.0}}}}],
         "signal_name": "x-custom-signal", "signal_type": "x-loadControlCapacity", "signal_id": "sig-2"},
        {"intervals": [{"duration": 40 * MIN, "signal_payload": 2.0}],
         "signal_name": "SIMPLE", "signal_type": "level", "signal_id": "sig-3", "measurement": POWER_REAL},
    ],
    "event_baseline": {
        "dtstart": T0, "duration": 40 * MIN,
        "intervals": [{"duration": 20 * MIN, "signal_payload": 100.0},
                      {"duration": 20 * MIN, "signal_payload": 110.0}],
        "baseline_id": "bl-1", "resource_ids": ["res1", "res2"], "baseline_name": "usual",
        "measurement": {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "k"},
    },
    "targets": ALL_TARGETS,
    "targets_by_type": by_type(ALL_TARGETS),
    "response_required": "always",
}

EVENT_MIN = {
    "event_descriptor": {"event_id": "ev-2", "modification_number": 0,
                         "market_context": "http://mc", "created_date_time": T0, "event_status": "far"},
    "active_period": {"dtstart": T0, "duration": 10 * MIN},
    "event_signals": [{"intervals": [{"signal_payload": 1.0}], "signal_name": "simple",
                       "signal_type": "level", "signal_id": "s"}],
    "targets": [], "targets_by_type": {},
    "response_required": "never",
}

REPORT_DESCRIPTION_FULL = {
    "r_id": "rid-volt", "report_subject": {"end_device_asset": {"mrid": "meter"}},
    "report_data_source": {"resource_id": ["dev1", "dev2"], "ven_id": "00123"},
    "report_type": "reading", "measurement": {"name": "voltage", "description": "Voltage",
                                              "unit": "V", "scale": "none"},
    "reading_type": "Direct Read", "market_context": "http://mc",
    "sampling_rate": {"min_period": timedelta(seconds=10), "max_period": 5 * MIN, "on_change": False},
}

REPORT_REQUEST_FULL = {
    "report_request_id": "rr-1",
    "report_specifier": {
        "report_specifier_id": "spec-1", "granularity": timedelta(seconds=10),
        "report_back_duration": timedelta(seconds=10),
        "report_interval": {"dtstart": T0, "duration": timedelta(hours=1)},
        "specifier_payloads": [
            {"r_id": "rid-volt", "measurement": {"name": "voltage", "description": "Voltage",
                                                 "unit": "V", "scale": "none"},
             "reading_type": "Direct Read"},
            {"r_id": "rid-status", "reading_type": "x-notApplicable"},
        ],
    },
}
REPORT_REQUEST_MIN = {"report_request_id": "rr-2", "report_specifier": {
    "report_specifier_id": "spec-2", "granularity": timedelta(0), "report_back_duration": timedelta(0),
    "specifier_payloads": [{"r_id": "r", "reading_type": "Direct Read"}]}}

GREENBUTTON_FEED = ('<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:uuid:1</id>'
                    '<title>usage</title><updated>2026-11-23T12:00:00Z</updated></feed>')

UPDATE_REPORT_FULL = {
    "request_id": "req-upd", "ven_id": "00123",
    "reports": [{
        "dtstart": T0, "duration": timedelta(seconds=100),
        "intervals": [
            {"dtstart": T0, "duration": timedelta(seconds=10), "uid": "0",
             "report_payload": {"r_id": "rid-volt", "confidence": 90, "accuracy": 0.5, "value": 230.25,
                                "data_quality": "Quality Good - Non Specific"}},
            {"dtstart": T0 + timedelta(seconds=10),
             "report_payloads": [{"r_id": "rid-volt", "value": -1e-05},
                                 {"r_id": "rid-status", "resource_status": {"online": True,
                                                                            "manual_override": True}}]},
        ],
        "report_id": "rep-1", "report_descriptions": [],
        "report_request_id": "rr-1", "report_specifier_id": "spec-1", "report_name": "TELEMETRY_USAGE",
        "created_date_time": T1,
    }, {
        "intervals": [{"dtstart": T0, "duration": timedelta(hours=1), "greenbutton_feed": GREENBUTTON_FEED}],
        "report_descriptions": [], "report_request_id": "rr-gb", "report_specifier_id": "spec-gb",
        "report_name": "HISTORY_GREENBUTTON", "created_date_time": T0,
    }],
}

#: message type -> (full payload, minimal payload)
CATALOGUE: dict[str, tuple[dict, dict]] = {
    "oadrDistributeEvent": (
        {"response": RESPONSE, "request_id": "req-2", "vtn_id": "VTN-1", "events": [EVENT_FULL, EVENT_MIN]},
        {"request_id": "req-2", "vtn_id": "VTN-1", "events": []},
    ),
    "oadrCreatedEvent": (
        {"response": RESPONSE, "event_responses": [
            {"response_code": 200, "response_description": "OK", "request_id": "req-2",
             "event_id": "ev-00042", "modification_number": 3, "opt_type": "optIn"},
            {"response_code": 200, "request_id": None, "event_id": "ev-2",
             "modification_number": 0, "opt_type": "optOut"}], "ven_id": "00123"},
        {"response": RESPONSE_MIN, "ven_id": "00123"},
    ),
    "oadrRequestEvent": ({"request_id": "req-3", "ven_id": "00123", "reply_limit": 5},
                         {"request_id": "req-3", "ven_id": "00123"}),
    "oadrResponse": ({"response": RESPONSE, "ven_id": "00123"}, {"response": RESPONSE_MIN}),
    "oadrCancelOpt": ({"request_id": "req-4", "opt_id": "opt-1", "ven_id": "00123"},
                      {"request_id": "req-4", "opt_id": "opt-1", "ven_id": "00123"}),
    "oadrCanceledOpt": ({"response": RESPONSE, "opt_id": "opt-1"}, {"response": RESPONSE_MIN}),
    "oadrCreateOpt": (
        {"opt_id": "opt-1", "opt_type": "optOut", "opt_reason": "x-schedule", "market_context": "http://mc",
         "ven_id": "00123", "vavailability": {"components": [
             {"dtstart": T0, "duration": timedelta(hours=2)},
             {"dtstart": T0 + timedelta(days=1), "duration": timedelta(hours=2)}]},
         "created_date_time": T0, "request_id": "req-5", "event_id": "ev-00042", "modification_number": 3,
         "targets": [{"resource_id": "res1"}, {"ven_id": "00123"}],
         "targets_by_type": {"resource_id": ["res1"], "ven_id": ["00123"]},
         "device_class": [{"end_device_asset": {"mrid": "Thermostat"}}]},
        {"opt_id": "opt-2", "opt_type": "optIn", "opt_reason": "economic", "ven_id": "00123",
         "created_date_time": T0, "request_id": "req-5", "targets": [], "targets_by_type": {}},
    ),
    "oadrCreatedOpt": ({"response": RESPONSE, "opt_id": "opt-1"}, {"response": RESPONSE_MIN, "opt_id": "o"}),
    "oadrCancelReport": (
        {"request_id": "req-6", "report_request_ids": ["rr-1", "rr-2"], "report_request_id": "rr-1",
         "report_to_follow": True, "ven_id": "00123"},
        {"request_id": "req-6", "report_request_ids": ["rr-3"], "report_request_id": "rr-3",
         "report_to_follow": False},
    ),
    "oadrCanceledReport": (
        {"response": RESPONSE, "pending_reports": [{"report_request_id": "rr-2"}], "ven_id": "00123"},
        {"response": RESPONSE_MIN, "pending_reports": []},
    ),
    "oadrCreateReport": (
        {"request_id": "req-7", "report_requests": [REPORT_REQUEST_FULL, REPORT_REQUEST_MIN], "ven_id": "00123"},
        {"request_id": "req-7", "report_requests": [REPORT_REQUEST_MIN]},
    ),
    "oadrCreatedReport": (
        {"response": RESPONSE, "pending_reports": [{"report_request_id": "rr-1"},
                                                   {"report_request_id": "rr-2"}], "ven_id": "00123"},
        {"response": RESPONSE_MIN, "pending_reports": []},
    ),
    "oadrRegisterReport": (
        {"request_id": "req-8", "reports": [
            {"duration": timedelta(hours=1), "report_id": "meta-1",
             "report_descriptions": [REPORT_DESCRIPTION_FULL] + [
                 {"r_id": f"rid-{m['name']}", "report_type": "usage", "measurement": m,
                  "reading_type": "Direct Read"} for m in MEASUREMENTS] + [
                 {"r_id": "rid-gb", "report_type": "usage", "reading_type": "Direct Read",
                  "measurement": {"name": "oadrGBDataDescription", "feed": GREENBUTTON_FEED}}],
             "report_request_id": "0", "report_specifier_id": "spec-meta",
             "report_name": "METADATA_TELEMETRY_USAGE", "created_date_time": T0},
            {"report_descriptions": [{"r_id": "rid-status", "report_type": "x-resourceStatus",
                                      "reading_type": "x-notApplicable"}],
             "report_request_id": "0", "report_specifier_id": "spec-status",
             "report_name": "METADATA_TELEMETRY_STATUS", "created_date_time": T0},
            {"report_descriptions": [], "report_request_id": "0", "report_specifier_id": "spec-hist",
             "report_name": "METADATA_HISTORY_USAGE", "created_date_time": T0},
        ], "ven_id": "00123", "report_request_id": "rr-9"},
        {"request_id": "req-8", "reports": []},
    ),
    "oadrRegisteredReport": (
        {"response": RESPONSE, "report_requests": [REPORT_REQUEST_FULL], "ven_id": "00123"},
        {"response": RESPONSE_MIN, "report_requests": []},
    ),
    "oadrUpdateReport": (UPDATE_REPORT_FULL, {"request_id": "req-upd", "reports": []}),
    "oadrUpdatedReport": (
        {"response": RESPONSE, "cancel_report": {"request_id": "req-10", "report_request_ids": ["rr-1"],
                                                 "report_request_id": "rr-1", "report_to_follow": False,
                                                 "ven_id": "00123"}, "ven_id": "00123"},
        {"response": RESPONSE_MIN},
    ),
    "oadrCancelPartyRegistration": ({"request_id": "req-11", "registration_id": "reg-1", "ven_id": "00123"},
                                    {"request_id": "req-11", "registration_id": "reg-1"}),
    "oadrCanceledPartyRegistration": ({"response": RESPONSE, "registration_id": "reg-1", "ven_id": "00123"},
                                      {"response": RESPONSE_MIN}),
    "oadrCreatePartyRegistration": (
        {"request_id": "req-12", "registration_id": "reg-1", "ven_id": "00123", "profile_name": "2.0b",
         "transport_name": "xmpp", "transport_address": "ven7@grid.example/oadr", "report_only": False,
         "xml_signature": False, "ven_name": "ven seven", "http_pull_model": False},
        {"request_id": "req-12", "profile_name": "2.0b", "transport_name": "xmpp",
         "report_only": True, "xml_signature": False},
    ),
    "oadrCreatedPartyRegistration": (
        {"response": RESPONSE, "registration_id": "reg-1", "ven_id": "00123", "vtn_id": "VTN-1",
         "profiles": [{"profile_name": "2.0a", "transports": [{"transport_name": "simpleHttp"}]},
                      {"profile_name": "2.0b", "transports": [{"transport_name": "simpleHttp"},
                                                              {"transport_name": "xmpp"}]}],
         "requested_oadr_poll_freq": timedelta(seconds=10),
         "service_specific_info": [{"service_name": "EiEvent", "info": [{"key": "k", "value": "v"}]}],
         "extensions": [{"extension_name": "x-ext", "info": []}]},
        {"response": RESPONSE_MIN, "vtn_id": "VTN-1",
         "profiles": [{"profile_name": "2.0b", "transports": [{"transport_name": "xmpp"}]}]},
    ),
    "oadrRequestReregistration": ({"ven_id": "00123"}, {"ven_id": "0"}),
    "oadrQueryRegistration": ({"request_id": "req-13"}, {"request_id": "x"}),
    "oadrPoll": ({"ven_id": "00123"}, {"ven_id": "v"}),
}
