"""``xmpp-vtn event``: create, modify, cancel and list a running VTN's events, as one of its
operators, over the VTN's XEP-0050 commands (``create-event``, ``modify-event``, ``cancel-event``,
``list-events``; ``list-vens`` for ``xmpp-vtn event vens``).

The command logs in to the XMPP server as the operator account (the VTN's ``operators`` list must
name it). Its JID comes from ``--jid`` or ``XMPP_VTN_OPERATOR_JID``; its password from
``--password-file`` or ``XMPP_VTN_OPERATOR_PASSWORD``, never from the command line.

    $ export XMPP_VTN_OPERATOR_JID=operator@localhost XMPP_VTN_OPERATOR_PASSWORD=...
    $ xmpp-vtn event create --vtn vtn.localhost --ca-file cert.pem --ven ven1 --payload 1 --duration 30
    event ev-3f2a... created for ven1 (start 2030-01-31T14:00:00+00:00, end 2030-01-31T14:30:00+00:00)
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .login import Security

JID_ENV = "XMPP_VTN_OPERATOR_JID"
PASSWORD_ENV = "XMPP_VTN_OPERATOR_PASSWORD"


class EventCommandError(Exception):
    """What the VTN (or the server) answered instead of doing the command, in words."""


@dataclass
class Outcome:
    """A command's answer: its notes (type, text) and its result form's values and table rows."""

    notes: list[tuple[str, str]]
    values: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def refused(self) -> bool:
        return any(kind == "error" for kind, _ in self.notes)


def credentials(args: argparse.Namespace, environ: dict[str, str] = os.environ) -> tuple[str, str]:
    """The operator's JID and password (``--jid``/env, ``--password-file``/env); ValueError saying what is missing."""
    jid = args.jid or environ.get(JID_ENV, "")
    if not jid:
        raise ValueError(f"no operator JID: give --jid or set {JID_ENV}")
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as source:
            password = source.readline().rstrip("\r\n")
    else:
        password = environ.get(PASSWORD_ENV, "")
    if not password:
        raise ValueError(f"no operator password: give --password-file FILE or set {PASSWORD_ENV}")
    return jid, password


def form_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The XEP-0050 node and the submitted form values for ``args``."""
    if args.action == "create":
        values: dict[str, Any] = {"ven_ids": args.ven or [], "signal_name": args.signal, "signal_type": args.type,
                                  "payload": args.payload, "duration": str(args.duration), "start": args.start or ""}
        if args.target:
            values["targets"] = args.target
        return "create-event", values
    if args.action == "modify":
        return "modify-event", {"event_id": args.event_id, "payload": args.payload or "",
                                "start": args.start or "", "duration": str(args.duration or "")}
    if args.action == "cancel":
        return "cancel-event", {"event_id": args.event_id}
    return ("list-vens" if args.action == "vens" else "list-events"), {}


async def execute(jid: str, password: str, security: "Security", host: str, port: int, vtn: str, node: str,
                  values: dict[str, Any], timeout: float = 20.0) -> Outcome:
    """Log in, run command ``node`` on ``vtn`` with ``values`` submitted at once, log out."""
    from slixmpp.exceptions import IqError, IqTimeout

    from ..runtime.stanzas import close_stream
    from .login import make_client, wait_for_login
    client = make_client(jid if "/" in jid else f"{jid}/xmpp-vtn-event", password, security)
    for plugin in ("xep_0030", "xep_0004", "xep_0050"):
        client.register_plugin(plugin)
    client.connect(host, port)
    try:
        await wait_for_login(client, host, port, timeout)
        form = None
        if values:
            form = client.plugin["xep_0004"].make_form(ftype="submit")
            for var, value in values.items():
                form.add_field(var=var, value=value)
        try:
            answer = await client.plugin["xep_0050"].send_command(vtn, node, payload=form, timeout=timeout)
        except IqError as error:
            condition, text = error.iq["error"]["condition"], error.iq["error"]["text"]
            if condition == "forbidden":
                raise EventCommandError(f"{vtn} refused {jid}: not one of its operators (its configuration's "
                                        "operators list)") from None
            if condition in ("service-unavailable", "remote-server-timeout", "remote-server-not-found"):
                raise EventCommandError(f"{vtn} is not reachable ({condition}): is the VTN running?") from None
            raise EventCommandError(f"{vtn} answered {condition}{': ' + text if text else ''}") from None
        except IqTimeout:
            raise EventCommandError(f"{vtn} did not answer within {timeout:g} s") from None
        command = answer["command"]
        result = command["form"] if command.xml.find("{jabber:x:data}x") is not None else None
        values_out = result.get_values() if result is not None else {}
        rows = list(result["items"]) if result is not None else []
        return Outcome([(kind, text) for kind, text in command["notes"]], values_out, rows)
    finally:
        await close_stream(client)


def render(action: str, outcome: Outcome) -> str:
    """What the command prints."""
    lines = [f"{'error' if kind == 'error' else 'note'}: {text}" for kind, text in outcome.notes
             if kind == "error" or not outcome.values and not outcome.rows]
    if outcome.refused:
        return "\n".join(lines)
    values = outcome.values
    if action == "create":
        ven_ids = values.get("ven_ids") or []
        lines.append(f"event {values.get('event_id')} created for {', '.join(ven_ids)} "
                     f"(start {values.get('start')}, end {values.get('end')})")
    elif action == "modify":
        lines.append(f"event {values.get('event_id')} modified: modification {values.get('modification_number')}")
    elif action == "cancel":
        lines.append(f"event {values.get('event_id')} cancelled")
    else:
        columns = (["ven_id", "jid", "transport_address", "online", "registration_id"] if action == "vens" else
                   ["event_id", "status", "modification_number", "signal", "start", "end", "opts"])
        headers = {"ven_id": "VENID", "transport_address": "PUSHES GO TO", "registration_id": "REGISTRATION",
                   "modification_number": "MOD", "opts": "ANSWERS"}
        table = [[headers.get(column, column.upper()) for column in columns]]
        table += [[str(row.get(column) or "") for column in columns] for row in outcome.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``xmpp-vtn event ...``: exit 0 done, 1 refused or unreachable, 2 wrong arguments."""
    from .login import LoginFailed, Security       # slixmpp: only for the command that needs it
    try:
        jid, password = credentials(args)
        security = Security(args.tls, ca_file=args.ca_file, insecure=args.insecure, mechanism=args.sasl)
    except (OSError, ValueError) as exc:
        print(f"xmpp-vtn event: {exc}", file=sys.stderr)
        return 2
    if args.action == "create" and not (args.ven or args.target):
        print("xmpp-vtn event create: give --ven VENID (repeatable) or --target", file=sys.stderr)
        return 2
    node, values = form_for(args)
    port = args.port or (5223 if args.tls == "direct" else 5222)
    logging.getLogger("slixmpp").setLevel(logging.CRITICAL)    # our message says what went wrong
    try:
        outcome = asyncio.run(execute(jid, password, security, args.host, port, args.vtn, node, values))
    except (LoginFailed, EventCommandError) as exc:
        print(f"xmpp-vtn event: {exc}", file=sys.stderr)
        return 1
    text = render(args.action, outcome)
    print(text, file=sys.stderr if outcome.refused else sys.stdout)
    return 1 if outcome.refused else 0


def add_parser(commands: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """The ``event`` command and its actions."""
    event = commands.add_parser(
        "event", help="create, modify, cancel or list a running VTN's events (as one of its operators)",
        description=__doc__.split("\n\n")[0], formatter_class=formatter,
        epilog=f"The operator's JID: --jid or {JID_ENV}; its password: --password-file or {PASSWORD_ENV} "
               "(never on the command line). The VTN's configuration must list the JID under operators.")
    actions = event.add_subparsers(dest="action", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--vtn", required=True, help="the VTN component's JID, e.g. vtn.example.com")
        parser.add_argument("--jid", help=f"the operator's account (default: ${JID_ENV})")
        parser.add_argument("--password-file", metavar="FILE",
                            help=f"a file whose first line is the password (default: ${PASSWORD_ENV})")
        parser.add_argument("--host", default="127.0.0.1", help="the XMPP server's client address")
        parser.add_argument("--port", type=int, help="the XMPP server's client port (default: 5222, 5223 with "
                                                     "--tls direct)")
        parser.add_argument("--tls", choices=("starttls", "direct", "none"), default="starttls",
                            help="how to secure the login")
        parser.add_argument("--ca-file", metavar="PATH", help="PEM file of the CA that signed the server's "
                                                              "certificate (default: the system's trust store)")
        parser.add_argument("--insecure", action="store_true", help="do not verify the server's certificate")
        parser.add_argument("--sasl", metavar="MECHANISM", help="force one SASL mechanism (default: SCRAM with TLS)")
        parser.formatter_class = formatter

    create = actions.add_parser("create", help="create an event and push it to its VENs")
    common(create)
    create.add_argument("--ven", action="append", metavar="VENID", help="a VEN the event is for (repeatable)")
    create.add_argument("--target", action="append", help="a target the VTN's on_targets resolves (group id or "
                                                          "kind=value; repeatable)")
    create.add_argument("--signal", default="SIMPLE", help="signal name")
    create.add_argument("--type", default="level", help="signal type")
    create.add_argument("--payload", required=True, help="the signal's value, e.g. 1")
    create.add_argument("--start", help="ISO 8601 start, UTC unless an offset is given (default: in one minute)")
    create.add_argument("--duration", type=int, default=60, help="minutes")
    modify = actions.add_parser("modify", help="change an event's payload, start or duration")
    common(modify)
    modify.add_argument("event_id")
    modify.add_argument("--payload", help="the new value")
    modify.add_argument("--start", help="the new ISO 8601 start")
    modify.add_argument("--duration", type=int, help="the new duration in minutes")
    cancel = actions.add_parser("cancel", help="cancel an event; its VENs are told")
    common(cancel)
    cancel.add_argument("event_id")
    listing = actions.add_parser("list", help="the events, their status and the VENs' answers")
    common(listing)
    vens = actions.add_parser("vens", help="the registered VENs")
    common(vens)
    event.set_defaults(run=run)
