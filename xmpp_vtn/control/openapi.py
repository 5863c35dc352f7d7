"""The OpenAPI 3 description of the control listener, served at ``/api/openapi.json``.

Written by hand beside the routes (:data:`xmpp_vtn.control.api.ROUTES`); a test checks that it
describes exactly the routes the listener serves, and that it is a valid OpenAPI 3.0 document.
"""
from __future__ import annotations

import copy
from typing import Any

VERSION = "0.1.0"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": "string", "nullable": True}
_INSTANT = {"type": "string", "format": "date-time", "example": "2030-01-31T14:00:00Z"}
_PERIOD = {"type": "string", "description": "ISO 8601 duration", "example": "PT1H"}
_VEN_FILTER = {"name": "ven_id", "in": "query", "required": False, "schema": _TEXT,
               "description": "only this VEN's"}
_EVENT_ID = {"name": "event_id", "in": "path", "required": True, "schema": _TEXT}
_AUTH_ERRORS = {"401": _error("no credentials, or wrong ones")}

_EVENT_FIELDS: dict[str, Any] = {
    "ven_ids": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT, "minItems": 1}],
                "description": "the VENs (a venID or a list); or give targets instead"},
    "targets": {"type": "array", "minItems": 1, "items": {"type": "object", "minProperties": 1, "maxProperties": 1,
                                                          "additionalProperties": _TEXT},
                "description": "targets such as {\"group_id\": \"north\"}, resolved to VENs by on_targets"},
    "signal_name": {"type": "string", "example": "SIMPLE"},
    "signal_type": {"type": "string", "example": "level"},
    "intervals": {"type": "array", "minItems": 1, "items": _ref("IntervalInput")},
    "market_context": _TEXT,
    "priority": {"type": "integer", "minimum": 0},
    "response_required": {"type": "string", "enum": ["always", "never"]},
    "notification_period": _PERIOD, "ramp_up_period": _PERIOD, "recovery_period": _PERIOD,
    "test_event": {"type": "boolean"}, "vtn_comment": _TEXT, "current_value": {"type": "number"},
    "signal_target_mrid": _TEXT,
}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "field"], "properties": {
        "error": {"type": "string", "description": "what is wrong"},
        "field": {"type": "string", "description": "the field, header or parameter it is about"}}},
    "Ven": {"type": "object", "properties": {
        "ven_id": _TEXT, "ven_name": _NULLABLE_TEXT, "registration_id": _TEXT, "jid": _TEXT,
        "transport": {"type": "string", "enum": ["xmpp", "simpleHttp"]}, "transport_address": _TEXT,
        "registered_at": _INSTANT, "online": {"type": "boolean", "nullable": True},
        "state": {"type": "string", "enum": ["online", "offline", "unknown"]},
        "last_seen": {**_INSTANT, "nullable": True}, "owed_pushes": {"type": "integer"}}},
    "Delivery": {"type": "object", "properties": {
        "ven_id": _TEXT, "delivered_modification": {"type": "integer", "nullable": True},
        "delivered_status": _NULLABLE_TEXT, "up_to_date": {"type": "boolean"},
        "opt_type": {"type": "string", "nullable": True, "enum": ["optIn", "optOut", None]},
        "opt_modification": {"type": "integer", "nullable": True}, "opt_current": {"type": "boolean"}}},
    "Event": {"type": "object", "properties": {
        "event_id": _TEXT, "modification_number": {"type": "integer"},
        "status": {"type": "string", "enum": ["far", "near", "active", "completed", "cancelled"]},
        "signal_name": _TEXT, "signal_type": _TEXT, "signals": {"type": "integer"},
        "intervals": {"type": "array", "items": {"type": "object", "properties": {
            "duration": _PERIOD, "signal_payload": {"type": "number"}}}},
        "start": _INSTANT, "duration": _PERIOD, "end": {**_INSTANT, "nullable": True},
        "market_context": _NULLABLE_TEXT, "priority": {"type": "integer", "nullable": True},
        "test_event": {"type": "boolean"}, "vtn_comment": _NULLABLE_TEXT, "modification_reason": _NULLABLE_TEXT,
        "created": _INSTANT, "targets": {"type": "array", "items": {"type": "object"}},
        "ven_ids": {"type": "array", "items": _TEXT},
        "summary": {"type": "object", "properties": {name: {"type": "integer"} for name in (
            "vens", "up_to_date", "opt_in", "opt_out", "no_answer")}}}},
    "EventDetail": {"allOf": [_ref("Event"), {"type": "object", "properties": {
        "deliveries": {"type": "array", "items": _ref("Delivery")}}}]},
    "IntervalInput": {"type": "object", "required": ["duration", "signal_payload"], "additionalProperties": False,
                      "properties": {"dtstart": {**_INSTANT, "description": "required on the first interval"},
                                     "duration": _PERIOD, "signal_payload": {"type": "number"}, "uid": _TEXT}},
    "EventCreate": {"type": "object", "required": ["signal_name", "signal_type", "intervals"],
                    "additionalProperties": False,
                    "properties": {**_EVENT_FIELDS, "event_id": {"type": "string", "description": "default: random"}}},
    "EventModify": {"type": "object", "additionalProperties": False, "minProperties": 1,
                    "properties": {**_EVENT_FIELDS, "reason": {"type": "string",
                                                               "description": "the modification reason"}}},
    "Subscription": {"type": "object", "properties": {
        "report_request_id": _TEXT, "ven_id": _TEXT, "direction": {"type": "string",
                                                                  "enum": ["ven_to_vtn", "vtn_to_ven"]},
        "state": _TEXT, "report_specifier_id": _TEXT, "r_ids": {"type": "array", "items": _TEXT},
        "granularity": {**_PERIOD, "nullable": True}, "report_back_duration": {**_PERIOD, "nullable": True}}},
    "Reports": {"type": "object", "properties": {
        "offers": {"type": "array", "items": {"type": "object", "properties": {
            "ven_id": _TEXT, "report_specifier_id": _TEXT, "report_name": _TEXT,
            "r_ids": {"type": "array", "items": _TEXT}}}},
        "subscriptions": {"type": "array", "items": _ref("Subscription")},
        "readings": {"type": "object", "description": "venID -> rID -> the latest readings this instance received",
                     "additionalProperties": {"type": "object", "additionalProperties": {
                         "type": "array", "items": {"type": "object", "properties": {
                             "at": _INSTANT, "value": {"type": "number"}}}}}}}},
    "Health": {"type": "object", "properties": {
        "ok": {"type": "boolean"}, "xmpp_connected": {"type": "boolean"}, "store_reachable": {"type": "boolean"},
        "vtn_id": _TEXT}},
}

_PATHS: dict[str, Any] = {
    "/api/vens": {"get": {"summary": "Registered VENs", "operationId": "listVens", "responses": {
        "200": _json({"type": "object", "properties": {"vens": {"type": "array", "items": _ref("Ven")}}},
                     "the VENs, ordered by venID"), **_AUTH_ERRORS}}},
    "/api/events": {
        "get": {"summary": "Events with their status", "operationId": "listEvents", "parameters": [_VEN_FILTER],
                "responses": {"200": _json({"type": "object", "properties": {
                    "events": {"type": "array", "items": _ref("Event")}}}, "the events, oldest first"),
                    "400": _error("bad filter"), **_AUTH_ERRORS}},
        "post": {"summary": "Create an event and push it (add_event)", "operationId": "createEvent",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("EventCreate")}}},
                 "responses": {
                     "201": _json({"type": "object", "properties": {"event_id": _TEXT}}, "created and pushed"),
                     "400": _error("a field is wrong; nothing was created"), **_AUTH_ERRORS,
                     "403": _error("cross-site request refused"),
                     "409": _error("an event with that event_id exists"), "413": _error("body too large"),
                     "415": _error("the body is not application/json")}}},
    "/api/events/{event_id}": {
        "parameters": [_EVENT_ID],
        "get": {"summary": "One event with each VEN's delivery and opt", "operationId": "getEvent", "responses": {
            "200": _json(_ref("EventDetail"), "the event"), **_AUTH_ERRORS, "404": _error("no such event")}},
        "patch": {"summary": "Modify an event and push it (modify_event)", "operationId": "modifyEvent",
                  "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("EventModify")}}},
                  "responses": {
                      "200": _json({"type": "object", "properties": {"event_id": _TEXT,
                                                                     "modification_number": {"type": "integer"}}},
                                   "modified and pushed"),
                      "400": _error("a field is wrong; nothing changed"), **_AUTH_ERRORS,
                      "403": _error("cross-site request refused"), "404": _error("no such event"),
                      "409": _error("the event is cancelled or completed, or cannot be modified this way"),
                      "413": _error("body too large"), "415": _error("the body is not application/json")}},
        "delete": {"summary": "Cancel an event and tell its VENs", "operationId": "cancelEvent", "responses": {
            "200": _json({"type": "object", "properties": {"event_id": _TEXT, "status": {"type": "string"},
                                                           "modification_number": {"type": "integer"}}},
                         "cancelled (also when it was already)"),
            **_AUTH_ERRORS, "403": _error("cross-site request refused"), "404": _error("no such event"),
            "409": _error("the event is completed")}}},
    "/api/reports": {"get": {"summary": "Report offers, subscriptions both ways, latest readings",
                             "operationId": "listReports", "parameters": [_VEN_FILTER], "responses": {
                                 "200": _json(_ref("Reports"), "reports"), "400": _error("bad filter"),
                                 **_AUTH_ERRORS}}},
    "/api/opts": {"get": {"summary": "Opt schedules in force", "operationId": "listOpts", "parameters": [_VEN_FILTER],
                          "responses": {"200": _json({"type": "object", "properties": {
                              "opts": {"type": "array", "items": {"type": "object"}}}},
                              "the oadrCreateOpt payloads in force"), "400": _error("bad filter"), **_AUTH_ERRORS}}},
    "/api/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "responses": {
        "200": _json({"type": "object"}, "the OpenAPI document"), **_AUTH_ERRORS}}},
    "/api/stream": {"get": {"summary": "Server-sent events: the dashboard's live view", "operationId": "stream",
                            "description": "Events named vens, events, reports and opts, each carrying the "
                                           "topic's current JSON (as the GET routes give it), sent at once and "
                                           "when the topic changes as a whole; and, about every 0.1 s while VENs "
                                           "answer, one event per kind of per-VEN change: deliveries "
                                           "({\"events\": {event_id: [delivery, ...]}}, the changed VENs' "
                                           "deliveries and opt answers) and ven-rows ({\"vens\": [row, ...]}, "
                                           "the changed or newly registered VENs' rows).",
                            "responses": {"200": {"description": "an endless text/event-stream",
                                                  "content": {"text/event-stream": {"schema": _TEXT}}},
                                          **_AUTH_ERRORS}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "responses": {
        "200": {"description": "the Prometheus text format", "content": {"text/plain": {"schema": _TEXT}}},
        **_AUTH_ERRORS}}},
    "/healthz": {"get": {"summary": "Health: XMPP connected and store reachable (no authentication)",
                         "operationId": "health", "security": [], "responses": {
                             "200": _json(_ref("Health"), "healthy"), "503": _json(_ref("Health"), "not healthy")}}},
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "xmpp-vtn control API", "version": VERSION,
             "description": "The operator's window on an OpenADR 2.0b VTN: its VENs, events, reports and opts. "
                            "Datetimes are ISO 8601 with a timezone, durations ISO 8601 durations. Every error "
                            "is a JSON object naming the field it is about."},
    "servers": [{"url": "/"}],
    # A client certificate signed by the configured CA also lets a request in (TLS, below HTTP).
    "security": [{"bearerAuth": []}, {"sessionCookie": []}],
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "a token whose sha256 hash is configured ([control] tokens)"},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "xmpp_vtn_session",
                              "description": "the dashboard's session, from the login form"},
        },
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy)."""
    return copy.deepcopy(_DOCUMENT)
