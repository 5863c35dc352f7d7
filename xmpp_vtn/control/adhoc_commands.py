"""Operator commands over XMPP: XEP-0050 ad-hoc commands on the VTN's component JID.

Any XMPP client of an authorised operator (Gajim, Psi, a slixmpp script) can
list the registered VENs, create an event and cancel one, by sending ad-hoc commands to the
component's JID (``vtn.example.com``):

=================  ==================================================================
node               what it does
=================  ==================================================================
``list-vens``      a result table: venID, account JID, transport address, online, registration id
``create-event``   a form (venIDs or targets, signal, payload, start, duration); answers the event id
``cancel-event``   a form choosing among the events not yet over; cancels it
``modify-event``   a form: the event, and a new payload, start or duration (empty: kept)
``list-events``    a result table: event id, status, modification, signal, start, end, VENs, opts
=================  ==================================================================

Only the bare JIDs in ``operators`` may run them (the XMPP server stamps and authenticates the
sender's ``from``); anyone else gets ``auth/forbidden`` and sees no commands in disco#items.
Bad input ends the command with notes of type ``error`` that say what is wrong (one per
problem), and creates nothing.

A slixmpp plugin (``vtn_operator_commands``) over :class:`~xmpp_vtn.control.desk.OperatorDesk`.
Installed by ``VTNComponent(..., operators=["alice@example.com"])``, or by hand:

>>> install_operator_commands(vtn, vtn.component.xmpp, ["alice@example.com"])      # doctest: +SKIP
"""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from slixmpp import JID, Iq, InvalidJID
from slixmpp.exceptions import XMPPError
from slixmpp.plugins.base import BasePlugin, register_plugin
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0030 import DiscoInfo, DiscoItems
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from ..services.event_arguments import SIGNAL_TYPES, check_signal
from ..services.quotas import RateLimitedLog
from .desk import OperatorDesk

log = logging.getLogger("xmpp_vtn.operator")
# Any account can send commands: its refusals are logged once a minute, not once each.
_refusals = RateLimitedLog(log, interval=60.0)

COMMANDS_NS = "http://jabber.org/protocol/commands"
DATA_FORMS_NS = "jabber:x:data"

LIST_VENS = "list-vens"
CREATE_EVENT = "create-event"
CANCEL_EVENT = "cancel-event"
MODIFY_EVENT = "modify-event"
LIST_EVENTS = "list-events"

#: Target kinds an operator may type into create-event's ``targets`` field (``kind=value``);
#: the VTN's ``on_targets`` handler turns them into venIDs.
TARGET_KINDS = ("group_id", "group_name", "resource_id", "party_id")

#: Up to this many choices a form offers a list; beyond it, a text field (a list of thousands
#: of VENs is no use to a person, and makes a very large stanza).
MAX_LISTED = 100

#: Command sessions left open longer than this are forgotten (slixmpp keeps every session,
#: finished or abandoned, for the life of the process).
SESSION_TTL = 15 * 60.0

_DONE_STATUSES = ("cancelled", "completed")


class _BadInput(ValueError):
    """What the operator typed cannot be used; each message goes back as an error note."""

    def __init__(self, *problems: str):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def install_operator_commands(desk: OperatorDesk, xmpp: Any, operators: Iterable[str]) -> None:
    """Offer the operator commands (``list-vens``, ``create-event``, ``cancel-event``,
    ``modify-event``, ``list-events``) on the
    component stream ``xmpp``, to the bare JIDs in ``operators`` only, acting through ``desk``.

    Registers the ``vtn_operator_commands`` plugin (with slixmpp's ``xep_0004`` and ``xep_0050``)
    on the stream. Call it before the VTN runs (``VTNComponent(..., operators=[...])`` does).
    Every ad-hoc command on this component is then limited to ``operators``. Calling it again for
    the same stream replaces the operators; one no longer listed is refused at once, even in a
    session already started. Raises ValueError for an invalid or missing operator JID.
    """
    allowed = operator_jids(operators)
    if OperatorCommands.name in xmpp.plugin:
        xmpp.plugin[OperatorCommands.name].operators = allowed
        return
    xmpp.register_plugin(OperatorCommands.name, pconfig={"desk": desk, "operators": allowed})


def operator_jids(operators: Iterable[str]) -> frozenset[str]:
    """The bare JIDs of ``operators``; ValueError for an invalid one or none at all."""
    if isinstance(operators, str):
        raise TypeError("operators must be a list of JIDs, not one string")
    bare: set[str] = set()
    for operator in operators:
        try:
            jid = JID(operator)
        except InvalidJID as error:
            raise ValueError(f"operator {operator!r} is not a valid JID: {error}") from None
        if not jid.bare:
            raise ValueError(f"operator {operator!r} is not a valid JID")
        bare.add(jid.bare)
    if not bare:
        raise ValueError("install_operator_commands needs at least one operator JID")
    return frozenset(bare)


class OperatorCommands(BasePlugin):
    """The three commands, their disco entries and the gate in front of them."""

    name = "vtn_operator_commands"
    description = "OpenADR VTN operator commands (XEP-0050), for the configured operators only"
    dependencies = {"xep_0004", "xep_0030", "xep_0050"}
    default_config = {"desk": None, "operators": frozenset()}

    def plugin_init(self) -> None:
        if self.desk is None:
            raise ValueError("vtn_operator_commands needs a desk (the VTN's operator interface)")
        self.jid = JID(self.xmpp.boundjid.bare)
        self.commands: dict[str, tuple[str, Callable[[Iq, dict], dict]]] = {
            LIST_VENS: ("List VENs", self._list_vens),
            CREATE_EVENT: ("Create an event", self._create_event),
            CANCEL_EVENT: ("Cancel an event", self._cancel_event),
            MODIFY_EVENT: ("Modify an event", self._modify_event),
            LIST_EVENTS: ("List events", self._list_events),
        }
        self.install()

    def install(self) -> None:
        adhoc = self.xmpp.plugin["xep_0050"]
        self.sessions = adhoc.sessions
        # slixmpp's own handler hands every command iq to its session machinery, which creates
        # a session for anyone and lets anyone who knows a session id continue it. Ours checks
        # the sender first, then fires the same events. Were slixmpp's handler left in place
        # (renamed in some release), commands would bypass the gate: refuse to start instead.
        if not self.xmpp.remove_handler("Ad-Hoc Execute"):
            raise RuntimeError("slixmpp's xep_0050 has no 'Ad-Hoc Execute' handler to guard; "
                               "operator commands need a slixmpp whose xep_0050 works as 1.17's does")
        self.xmpp.register_handler(Callback("Ad-Hoc Execute (operators only)", StanzaPath("iq@type=set/command"),
                                            self._gate))
        disco = self.xmpp.plugin["xep_0030"]
        disco.add_feature(COMMANDS_NS, jid=self.jid)
        # Per-node API handlers rather than adhoc.add_command(): add_command stores the handler
        # from a task on the loop (lost if the VTN is built before the loop runs), and its
        # disco items are static, the same for everyone, and wiped by every reconnect
        # (xep_0050's session_bind resets the commands node).
        for node, (name, handler) in self.commands.items():
            entry = (name, handler, None, 0)            # name, handler, timeout handler, timeout
            adhoc.api.register(lambda jid, _node, ifrom, args, entry=entry: entry, "get_command", self.jid, node)
            disco.api.register(self._node_info, "get_info", self.jid, node)
        disco.api.register(self._command_items, "get_items", self.jid, COMMANDS_NS)

    # -- authorisation ---------------------------------------------------------------------------

    def _allowed(self, sender: JID | None) -> bool:
        return sender is not None and sender.bare in self.operators

    def _gate(self, iq: Iq) -> None:
        """Every ``iq set`` with a command: operators only, and only the one who started a session
        may continue it. Raising XMPPError makes slixmpp answer the iq with that error."""
        sender = iq["from"]
        if not self._allowed(sender):
            _refusals(logging.WARNING, str(sender.bare if sender is not None else ""),
                      "ad-hoc command %r from %s refused: not an operator", iq["command"]["node"], sender)
            raise XMPPError("forbidden", "only the VTN's operators may run its commands", etype="auth")
        self._forget_old_sessions()
        session_id = iq["command"]["sessionid"]
        session = self.sessions.get(session_id) if session_id else None
        if session is not None and session.get("from") != sender:
            raise XMPPError("forbidden", "this command session belongs to someone else", etype="auth")
        if session is not None and session.get("node") != iq["command"]["node"]:
            raise XMPPError("bad-request", "this session belongs to another command")
        self.xmpp.event("command", iq)
        self.xmpp.event(f"command_{iq['command']['action']}", iq)

    def _forget_old_sessions(self) -> None:
        """Drop finished sessions of our commands, and abandoned ones after SESSION_TTL."""
        now = time.monotonic()
        for session_id, session in list(self.sessions.items()):
            if session.get("node") not in self.commands:
                continue
            if session.get("next") is None or now - session.get("started", now) > SESSION_TTL:
                self.sessions.pop(session_id, None)

    def _command_items(self, jid: JID, node: str, ifrom: JID | None, args: Any) -> DiscoItems:
        """disco#items of the commands node: the commands for operators, nothing for anyone else."""
        items = DiscoItems()
        if self._allowed(ifrom):
            for command_node, (name, _) in self.commands.items():
                items.add_item(self.jid.full, command_node, name)
        return items

    def _node_info(self, jid: JID, node: str, ifrom: JID | None, args: Any) -> DiscoInfo:
        """disco#info of a command node (XEP-0050 2.3); a non-operator is told it does not exist."""
        if not self._allowed(ifrom):
            raise XMPPError("item-not-found")
        info = DiscoInfo()
        info.add_identity("automation", "command-node", self.commands[node][0])
        info.add_feature(COMMANDS_NS)
        info.add_feature(DATA_FORMS_NS)
        return info

    # -- list-vens -------------------------------------------------------------------------------

    def _list_vens(self, iq: Iq, session: dict) -> dict:
        form = self._form("result", "Registered VENs")
        for var, label in (("ven_id", "venID"), ("jid", "JID"), ("transport_address", "Pushes go to"),
                           ("online", "Online"), ("registration_id", "Registration id")):
            form.add_reported(var, ftype="text-single", label=label)
        vens = self.desk.vens()
        for ven in vens:
            form.add_item({"ven_id": ven.ven_id, "jid": ven.bare_jid, "transport_address": ven.transport_address,
                           "online": _online(self.desk.is_online(ven.ven_id)),
                           "registration_id": ven.registration_id})
        return _finish(session, form, ("info", f"{len(vens)} VEN(s) registered"))

    # -- create-event ----------------------------------------------------------------------------

    def _create_event(self, iq: Iq, session: dict) -> dict:
        submitted = _submitted_form(session["payload"])
        if submitted is not None:
            # A form submitted with the execute itself (single-stage clients, or a session this
            # instance never saw, as with several instances behind one component domain).
            return self._create_submitted(submitted, session)
        vens = self.desk.vens()
        if not vens:
            return _finish(session, None, ("info", "No VEN is registered: there is nobody to send an event to."))
        form = self._form("form", "Create an event")
        form["instructions"] = ("Choose the VENs (venIDs)" +
                                (" or give targets" if self._resolves_targets() else "") +
                                ", then the signal. Times are ISO 8601; UTC unless an offset is given.")
        if len(vens) <= MAX_LISTED:
            form.add_field("ven_ids", "list-multi", label="VENs", options=[
                {"value": ven.ven_id,
                 "label": f"{ven.ven_id} ({ven.bare_jid}, {_online(self.desk.is_online(ven.ven_id))})"}
                for ven in vens])
        else:
            form.add_field("ven_ids", "text-multi", label="venIDs", desc="one venID per line")
        if self._resolves_targets():
            form.add_field("targets", "text-multi", label="Targets",
                           desc="resolved to VENs by the VTN: one per line, a groupID or kind=value "
                                f"with kind one of {', '.join(TARGET_KINDS)}")
        form.add_field("signal_name", "text-single", label="Signal name", required=True, value="SIMPLE",
                       desc="an OpenADR 2.0b signal name, or a custom one starting with x-")
        form.add_field("signal_type", "list-single", label="Signal type", required=True, value="level",
                       options=[{"value": kind, "label": kind} for kind in SIGNAL_TYPES])
        form.add_field("payload", "text-single", label="Payload value", required=True, desc="a number, e.g. 1")
        form.add_field("start", "text-single", label="Start",
                       desc="ISO 8601, e.g. 2030-01-31T14:00:00Z; empty: one minute from now")
        form.add_field("duration", "text-single", label="Duration (minutes)", required=True, value="60",
                       desc="a whole number of minutes")
        return _ask(session, form, self._create_submitted)

    def _resolves_targets(self) -> bool:
        return self.desk.resolves_targets

    def _create_submitted(self, payload: Any, session: dict) -> dict:
        form = _submitted_form(payload)
        if form is None or form["type"] == "cancel":
            return _finish(session, None, ("info", "No event was created."))
        values = form.get_values()
        operator = session["from"]
        try:
            arguments = self._event_arguments(values)
            event_id = self.desk.add_event(**arguments)
        except _BadInput as error:
            log.info("operator %s: create-event refused: %s", operator, error)
            return _finish(session, None, *(("error", problem) for problem in error.problems))
        except (ValueError, TypeError, KeyError) as error:       # add_event's own checks
            log.info("operator %s: create-event refused: %s", operator, _text_of(error))
            return _finish(session, None, ("error", _text_of(error)))
        except Exception:                                # never a traceback to the operator
            log.exception("operator %s: create-event failed", operator)
            return _finish(session, None, ("error", "the VTN failed to create the event; see its log"))
        ven_ids = self.desk.event_ven_ids(event_id)
        start = arguments["intervals"][0]["dtstart"]
        duration = arguments["intervals"][0]["duration"]
        log.info("operator %s created event %s for %s", operator, event_id, ", ".join(ven_ids))
        result = self._form("result", "Event created")
        result.add_field("event_id", "text-single", label="Event id", value=event_id)
        result.add_field("ven_ids", "text-multi", label="VENs", value=ven_ids)
        result.add_field("start", "text-single", label="Start", value=start.isoformat())
        result.add_field("end", "text-single", label="End", value=(start + duration).isoformat())
        return _finish(session, result, ("info", f"Event {event_id} created for {len(ven_ids)} VEN(s)."))

    def _event_arguments(self, values: dict) -> dict:
        """add_event's arguments from the submitted values; _BadInput lists every problem found."""
        problems: list[str] = []

        def checked(parse: Callable[..., Any], *args: Any) -> Any:
            try:
                return parse(*args)
            except _BadInput as error:
                problems.extend(error.problems)
                return None

        ven_ids = _lines(values.get("ven_ids"))
        target_lines = _lines(values.get("targets"))
        targets = [target for target in (checked(_target, line) for line in target_lines) if target is not None]
        if ven_ids and target_lines:
            problems.append("give venIDs or targets, not both")
        elif not ven_ids and not target_lines:
            problems.append("choose at least one VEN" + (" or target" if self._resolves_targets() else ""))
        elif target_lines and not self._resolves_targets():
            problems.append("this VTN has no on_targets handler: choose venIDs")
        unknown = [ven_id for ven_id in ven_ids if not self.desk.is_registered(ven_id)]
        if unknown:
            problems.append(f"venID {', '.join(unknown)} is not registered with this VTN")
        signal_name = _one(values.get("signal_name")) or "SIMPLE"
        signal_type = _one(values.get("signal_type")) or "level"
        checked(_signal, signal_name, signal_type)
        payload = checked(_number, _one(values.get("payload")))
        now = self.desk.now()
        start = checked(_start, _one(values.get("start")), now)
        duration = checked(_duration, _one(values.get("duration")))
        if start is not None and duration is not None and start + duration <= now:
            problems.append(f"the event would be over already (start {start.isoformat()}, "
                            f"{int(duration.total_seconds() // 60)} minutes)")
        if problems:
            raise _BadInput(*problems)
        return {"ven_id": ven_ids or None, "targets": targets or None, "signal_name": signal_name,
                "signal_type": signal_type,
                "intervals": [{"dtstart": start, "duration": duration, "signal_payload": payload}]}

    # -- cancel-event ----------------------------------------------------------------------------

    def _cancel_event(self, iq: Iq, session: dict) -> dict:
        submitted = _submitted_form(session["payload"])
        if submitted is not None:
            return self._cancel_submitted(submitted, session)
        events = [state for state in self.desk.events() if state.status not in _DONE_STATUSES]
        if not events:
            return _finish(session, None, ("info", "There is no event to cancel."))
        form = self._form("form", "Cancel an event")
        if len(events) <= MAX_LISTED:
            form.add_field("event_id", "list-single", label="Event", required=True, options=[
                {"value": state.event_id, "label": _event_label(state)} for state in events])
        else:
            form.add_field("event_id", "text-single", label="Event id", required=True)
        return _ask(session, form, self._cancel_submitted)

    def _cancel_submitted(self, payload: Any, session: dict) -> dict:
        form = _submitted_form(payload)
        if form is None or form["type"] == "cancel":
            return _finish(session, None, ("info", "No event was cancelled."))
        event_id = _one(form.get_values().get("event_id"))
        state = next((state for state in self.desk.events() if state.event_id == event_id), None)
        if not event_id:
            problem = "choose an event"
        elif state is None:
            problem = f"there is no event {event_id!r}"
        elif state.status in _DONE_STATUSES:
            problem = f"event {event_id} is {state.status} already"
        else:
            problem = None
        if problem is not None:
            return _finish(session, None, ("error", problem))
        try:
            self.desk.cancel_event(event_id)
        except Exception:
            log.exception("operator %s: cancel-event %s failed", session["from"], event_id)
            return _finish(session, None, ("error", "the VTN failed to cancel the event; see its log"))
        log.info("operator %s cancelled event %s", session["from"], event_id)
        result = self._form("result", "Event cancelled")
        result.add_field("event_id", "text-single", label="Event id", value=event_id)
        return _finish(session, result, ("info", f"Event {event_id} cancelled; its {len(state.deliveries)} "
                                                 "VEN(s) are told."))

    # -- modify-event ----------------------------------------------------------------------------

    def _modify_event(self, iq: Iq, session: dict) -> dict:
        submitted = _submitted_form(session["payload"])
        if submitted is not None:
            return self._modify_submitted(submitted, session)
        events = [state for state in self.desk.events() if state.status not in _DONE_STATUSES]
        if not events:
            return _finish(session, None, ("info", "There is no event to modify."))
        form = self._form("form", "Modify an event")
        form["instructions"] = "Choose the event; fill in what changes (empty fields keep their value)."
        if len(events) <= MAX_LISTED:
            form.add_field("event_id", "list-single", label="Event", required=True, options=[
                {"value": state.event_id, "label": _event_label(state)} for state in events])
        else:
            form.add_field("event_id", "text-single", label="Event id", required=True)
        form.add_field("payload", "text-single", label="Payload value", desc="a number; empty: unchanged")
        form.add_field("start", "text-single", label="Start", desc="ISO 8601; empty: unchanged")
        form.add_field("duration", "text-single", label="Duration (minutes)", desc="empty: unchanged")
        return _ask(session, form, self._modify_submitted)

    def _modify_submitted(self, payload: Any, session: dict) -> dict:
        form = _submitted_form(payload)
        if form is None or form["type"] == "cancel":
            return _finish(session, None, ("info", "No event was modified."))
        values = form.get_values()
        event_id = _one(values.get("event_id"))
        state = next((state for state in self.desk.events() if state.event_id == event_id), None)
        try:
            intervals = self._modified_intervals(event_id, state, values)
            modification = self.desk.modify_event(event_id, intervals)
        except _BadInput as error:
            return _finish(session, None, *(("error", problem) for problem in error.problems))
        except (ValueError, TypeError, KeyError) as error:       # modify_event's own checks
            return _finish(session, None, ("error", _text_of(error)))
        except Exception:
            log.exception("operator %s: modify-event %s failed", session["from"], event_id)
            return _finish(session, None, ("error", "the VTN failed to modify the event; see its log"))
        log.info("operator %s modified event %s (modification %d)", session["from"], event_id, modification)
        result = self._form("result", "Event modified")
        result.add_field("event_id", "text-single", label="Event id", value=event_id)
        result.add_field("modification_number", "text-single", label="Modification", value=str(modification))
        return _finish(session, result, ("info", f"Event {event_id} is at modification {modification}; "
                                                 f"its {len(state.deliveries)} VEN(s) are told."))

    def _modified_intervals(self, event_id: str, state: Any, values: dict) -> list[dict]:
        """The event's one interval with the submitted changes; _BadInput for what cannot be done."""
        if not event_id:
            raise _BadInput("choose an event")
        if state is None:
            raise _BadInput(f"there is no event {event_id!r}")
        if state.status in _DONE_STATUSES:
            raise _BadInput(f"event {event_id} is {state.status} already")
        texts = {name: _one(values.get(name)) for name in ("payload", "start", "duration")}
        if not any(texts.values()):
            raise _BadInput("give a new payload value, start or duration")
        signals = state.event["event_signals"]
        if len(signals) != 1 or len(signals[0]["intervals"]) != 1:
            raise _BadInput(f"event {event_id} has several signals or intervals: change it with "
                            "VTNComponent.modify_event")
        period, interval = state.event["active_period"], signals[0]["intervals"][0]
        problems: list[str] = []

        def checked(parse: Callable[..., Any], text: str, *args: Any, current: Any) -> Any:
            if not text:
                return current
            try:
                return parse(text, *args)
            except _BadInput as error:
                problems.extend(error.problems)
                return current
        now = self.desk.now()
        payload = checked(_number, texts["payload"], current=interval["signal_payload"])
        start = checked(_start, texts["start"], now, current=period["dtstart"])
        duration = checked(_duration, texts["duration"], current=interval.get("duration") or period["duration"])
        if not problems and start + duration <= now:
            problems.append(f"the event would be over already (start {start.isoformat()}, "
                            f"{int(duration.total_seconds() // 60)} minutes)")
        if problems:
            raise _BadInput(*problems)
        return [{"dtstart": start, "duration": duration, "signal_payload": payload}]

    # -- list-events -----------------------------------------------------------------------------

    def _list_events(self, iq: Iq, session: dict) -> dict:
        form = self._form("result", "Events")
        for var, label in (("event_id", "Event id"), ("status", "Status"), ("modification_number", "Modification"),
                           ("signal", "Signal"), ("start", "Start"), ("end", "End"), ("vens", "VENs"),
                           ("opts", "Answers")):
            form.add_reported(var, ftype="text-single", label=label)
        states = self.desk.events()
        for state in states:
            signal = state.event["event_signals"][0]
            period = state.event["active_period"]
            form.add_item({
                "event_id": state.event_id, "status": state.status,
                "modification_number": str(state.modification_number),
                "signal": f"{signal['signal_name']} {signal['signal_type']} "
                          f"{_payloads(signal['intervals'])}",
                "start": period["dtstart"].isoformat(), "end": (period["dtstart"] + period["duration"]).isoformat(),
                "vens": ", ".join(sorted(state.deliveries)),
                "opts": ", ".join(f"{ven_id} {delivery.opt_type or 'no answer'}"
                                  for ven_id, delivery in sorted(state.deliveries.items()))})
        return _finish(session, form, ("info", f"{len(states)} event(s)"))

    # -- helpers ---------------------------------------------------------------------------------

    def _form(self, form_type: str, title: str) -> Form:
        return self.xmpp.plugin["xep_0004"].make_form(ftype=form_type, title=title)


def _ask(session: dict, form: Form, then: Callable[[Any, dict], dict]) -> dict:
    """Answer with ``form`` (status executing, action complete); ``then`` gets the submission."""
    session.update(payload=form, next=then, has_next=False, allow_complete=True, notes=None,
                   started=time.monotonic())
    return session


def _finish(session: dict, form: Form | None, *notes: tuple[str, str]) -> dict:
    """End the command (status completed) with ``notes`` and, when given, a result form."""
    session.update(payload=form, next=None, has_next=False, notes=list(notes))
    return session


def _submitted_form(payload: Any) -> Form | None:
    """The data form in a command's payload (slixmpp hands one item, a list, or nothing)."""
    for item in payload if isinstance(payload, list) else [payload]:
        if isinstance(item, Form) and item["type"] in ("submit", "cancel"):
            return item
    return None


def _one(value: Any) -> str:
    """A single-valued field's text, stripped ('' when absent). A submitted form carries no field
    types, so slixmpp gives a list when a client sent several values."""
    if isinstance(value, list):
        value = value[0] if value else ""
    return (value or "").strip() if isinstance(value, str) else str(value or "").strip()


def _lines(value: Any) -> list[str]:
    """A multi-valued field's entries: each value, split into lines, stripped, without blanks or repeats."""
    values = value if isinstance(value, list) else [value or ""]
    lines = [line.strip() for item in values for line in str(item or "").splitlines()]
    return list(dict.fromkeys(line for line in lines if line))


def _target(line: str) -> dict:
    kind, separator, value = line.partition("=")
    if not separator:
        return {"group_id": line}
    kind, value = kind.strip(), value.strip()
    if kind not in TARGET_KINDS or not value:
        raise _BadInput(f"target {line!r} is not a groupID or kind=value with kind one of {', '.join(TARGET_KINDS)}")
    return {kind: value}


def _signal(signal_name: str, signal_type: str) -> None:
    try:
        check_signal(signal_name, signal_type)              # add_event's own check, in our list
    except ValueError as error:
        raise _BadInput(str(error)) from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _BadInput(f"payload value {text!r} is not a number" if text else "give a payload value (a number)")
    return value


def _start(text: str, now: datetime) -> datetime:
    if not text:
        return now + timedelta(minutes=1)
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text     # Python 3.10's fromisoformat lacks Z
    try:
        start = datetime.fromisoformat(iso)
    except ValueError:
        raise _BadInput(f"start {text!r} is not an ISO 8601 date and time such as 2030-01-31T14:00:00Z") from None
    return start if start.tzinfo is not None else start.replace(tzinfo=timezone.utc)


def _duration(text: str) -> timedelta:
    try:
        minutes = int(text)
    except ValueError:
        minutes = 0
    if minutes <= 0:
        raise _BadInput(f"duration {text!r} is not a whole number of minutes above 0, such as 60")
    return timedelta(minutes=minutes)


def _payloads(intervals: list[dict]) -> str:
    return ", ".join(f"{interval.get('signal_payload'):g}" if isinstance(interval.get("signal_payload"), (int, float))
                     else str(interval.get("signal_payload")) for interval in intervals)


def _online(state: bool | None) -> str:
    return {True: "online", False: "offline", None: "unknown"}[state]


def _event_label(state: Any) -> str:
    signal = state.event["event_signals"][0]
    start = state.event["active_period"]["dtstart"]
    ven_ids = sorted(state.deliveries)
    shown = ", ".join(ven_ids[:3]) + (f" and {len(ven_ids) - 3} more" if len(ven_ids) > 3 else "")
    return f"{state.event_id}: {signal['signal_name']} {signal['signal_type']}, {state.status}, " \
           f"starts {start.isoformat()}, for {shown}"


def _text_of(error: Exception) -> str:
    # str(KeyError) wraps its message in quotes.
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


# Registered once, at import, as slixmpp's own plugins are.
register_plugin(OperatorCommands)

__all__ = ["install_operator_commands", "OperatorCommands", "LIST_VENS", "CREATE_EVENT", "CANCEL_EVENT",
           "MODIFY_EVENT", "LIST_EVENTS"]
