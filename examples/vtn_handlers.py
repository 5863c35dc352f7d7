"""The example VTN's handlers (examples/vtn.py) as a handler module for ``xmpp-vtn run``.

``examples/vtn.toml`` names this file: ``xmpp-vtn run`` installs every function here named after
a handler (``on_create_party_registration``, ``on_register_report``, ...). A deployment writes its
own module like this one, with its own rules for who may register.
"""
from __future__ import annotations

import logging

# examples/vtn.py, beside this file (xmpp-vtn puts the handler module's directory on the path).
from vtn import KNOWN_VENS, registration_handler, usage_report_handler

log = logging.getLogger("vtn.handlers")


def _decided(ven_id: str, registration_id: str | None) -> None:
    if registration_id is None:
        log.warning("registration refused for venID %s", ven_id)
    else:
        log.info("venID %s registered as %s", ven_id, registration_id)


def _reading(ven_id: str, unit: str, data: list) -> None:
    for when, value in data:
        log.info("reading from %s at %s: %s %s", ven_id, when.isoformat(), value, unit)


on_create_party_registration = registration_handler(KNOWN_VENS, _decided)
on_register_report = usage_report_handler(_reading)


def on_create_opt(payload: dict) -> None:
    """A VEN posted an opt schedule (oadrCreateOpt)."""
    log.info("opt %s from %s: %s", payload.get("opt_id"), payload.get("ven_id"), payload.get("opt_type"))


def on_ven_online(ven_id: str) -> None:
    log.info("venID %s is online", ven_id)


def on_ven_offline(ven_id: str) -> None:
    log.warning("venID %s is offline", ven_id)
