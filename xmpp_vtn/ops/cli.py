"""The ``xmpp-vtn`` command: ``run``, ``status``, ``validate``, ``schemas``, ``ven-sim``, ``event``, ``token``.

Exit codes: 0 done; 1 the work failed (the server could not be reached, a payload is invalid,
a simulated VEN failed); 2 the command or its configuration is wrong.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
from typing import TYPE_CHECKING, Any, Callable

from .. import bundle
from ..errors import SchemaBundleError

if TYPE_CHECKING:
    from .config import VTNConfig

log = logging.getLogger("xmpp_vtn.cli")


def _schemas(args: argparse.Namespace) -> int:
    try:
        if args.action == "install":
            directory = bundle.install(wheel=args.wheel)
            print(f"installed the OpenADR 2.0b schema set in {directory}")
        else:
            entry = bundle.verify()
            print(f"schema set OK: {entry}")
    except SchemaBundleError as exc:
        print(f"xmpp-vtn: {exc}", file=sys.stderr)
        return 1
    return 0


def _ven_sim(args: argparse.Namespace) -> int:
    from ..testing import vensim
    try:
        accounts = vensim.load_accounts(args.accounts, args.prefix, args.domain, args.count, args.password)
        security = vensim.Security(args.tls, ca_file=args.ca_file, insecure=args.insecure, mechanism=args.sasl)
    except (OSError, ValueError) as exc:
        print(f"xmpp-vtn ven-sim: {exc}", file=sys.stderr)
        return 2
    if not accounts:
        print("xmpp-vtn ven-sim: no accounts: give --count, or --accounts FILE", file=sys.stderr)
        return 2
    if not 0 <= args.opt_in <= 1:
        print("xmpp-vtn ven-sim: --opt-in is a ratio between 0 and 1", file=sys.stderr)
        return 2
    if (args.ca_file or args.insecure) and args.tls == "none":
        print("xmpp-vtn ven-sim: --ca-file and --insecure need --tls starttls or --tls direct", file=sys.stderr)
        return 2
    if args.ca_file and not os.path.isfile(args.ca_file):
        print(f"xmpp-vtn ven-sim: --ca-file {args.ca_file}: no such file", file=sys.stderr)
        return 2
    port = args.port or (5223 if args.tls == "direct" else 5222)
    opt_in = vensim.choose_opt_in([jid for jid, _ in accounts], args.opt_in)
    options = vensim.Options(vtn_jid=args.vtn, host=args.host, port=port, opt_in=opt_in,
                             answer_delay=args.answer_delay / 1000, security=security,
                             telemetry=not args.no_telemetry)
    counts = vensim.run_simulation(accounts, options, processes=args.processes, duration=args.duration)
    print(vensim.summary(counts, len(accounts)))
    return 0 if counts.failed == 0 else 1


class _ShowDefaults(argparse.HelpFormatter):
    """Like argparse's ArgumentDefaultsHelpFormatter, without "(default: None)" or "False", and not
    when the help text already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _add_ven_sim(commands: Any) -> None:
    sim = commands.add_parser(
        "ven-sim", help="run many simulated VENs against a VTN (load and behaviour tests)",
        formatter_class=_ShowDefaults,
        description="Simulated VENs log in, register (venID = the account's local part), offer telemetry "
                    "(real power and energy), answer events and send the readings the VTN asks for.",
        epilog="Logging in: --tls starttls or direct verifies the server's certificate (--ca-file, or the "
               "system store) and uses SCRAM. slixmpp's SCRAM is pure-Python PBKDF2, about 35-65 ms of CPU per "
               "login: fine for a handful of VENs; for load runs of thousands, spread them over --processes or "
               "use --sasl PLAIN (inside TLS). --tls none (PLAIN, unencrypted) is for loopback test servers only. "
               "Exit code 0 when every VEN registered, 1 when any failed, 2 for bad arguments.")
    sim.add_argument("--vtn", required=True, help="the VTN component's JID, e.g. vtn.example.com")
    sim.add_argument("--host", default="127.0.0.1", help="the XMPP server's client address")
    sim.add_argument("--port", type=int, default=None,
                     help="the XMPP server's client port (default: 5222, or 5223 with --tls direct)")
    sim.add_argument("--tls", choices=("starttls", "direct", "none"), default="starttls",
                     help="how to secure the login: starttls, direct (TLS from the first byte), or none")
    sim.add_argument("--ca-file", metavar="PATH", help="PEM file of the CA that signed the server's certificate "
                                                      "(default: the system's trust store)")
    sim.add_argument("--insecure", action="store_true",
                     help="do not verify the server's certificate (throwaway test certificates only)")
    sim.add_argument("--sasl", metavar="MECHANISM", default=None,
                     help="force one SASL mechanism, e.g. PLAIN (default: SCRAM with TLS, PLAIN without)")
    sim.add_argument("--count", type=int, default=0, help="how many VENs (with --accounts: at most this many)")
    sim.add_argument("--accounts", help="file of 'jid password' lines (otherwise PREFIX<n>@DOMAIN)")
    sim.add_argument("--prefix", default="simven", help="account name prefix without --accounts")
    sim.add_argument("--domain", default="localhost", help="account domain without --accounts")
    sim.add_argument("--password", default="simven", help="the accounts' password without --accounts")
    sim.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                     help="worker processes the VENs are spread over")
    sim.add_argument("--opt-in", type=float, default=1.0,
                     help="share of VENs that opt in to events (0..1; the same VENs every run)")
    sim.add_argument("--answer-delay", type=float, default=0.0, help="milliseconds a VEN waits before answering")
    sim.add_argument("--no-telemetry", action="store_true", help="offer no reports")
    sim.add_argument("--duration", type=float, default=None,
                     help="seconds to run once all VENs are up (default: until Ctrl-C)")
    sim.set_defaults(run=_ven_sim)


def _say(command: str, message: str) -> None:
    print(f"xmpp-vtn {command}: {message}", file=sys.stderr)


def _config_errors(command: str, error: Any) -> int:
    """Print a ConfigError (every problem, one per line) and return exit code 2."""
    errors = error.errors
    where = f"{error.source}: " if error.source else ""
    if len(errors) == 1:
        _say(command, f"{where}{errors[0]}")
    else:
        _say(command, f"{where}{len(errors)} problems:")
        for line in errors:
            print(f"  {line}", file=sys.stderr)
    return 2


# -- run ---------------------------------------------------------------------------------------------

class _ConnectionWatch:
    """Remembers how the last connection attempt ended, to say why the VTN could not connect."""

    def __init__(self, xmpp: Any):
        self.failure: object = None           # an OSError or slixmpp's text, from connection_failed
        self.stream_error: Any = None         # the server's <stream:error/>
        self.tcp_connected = False
        #: The server answered with a client (c2s) stream: the configured port is the client port.
        self.client_stream = False
        self._header = b""
        xmpp.add_event_handler("connection_failed", self._failed)
        xmpp.add_event_handler("stream_error", self._stream_error)
        xmpp.add_event_handler("connected", self._connected)
        # The namespace of the server's stream header says which port this is: a component port
        # answers in jabber:component:accept, a client port in jabber:client (and offers stream
        # features, which a component never gets). slixmpp's parser keeps no namespace
        # declarations, so the first bytes are read as they arrive.
        received = xmpp.data_received

        def data_received(data: bytes) -> None:
            if len(self._header) < 1024:
                self._header += data[:1024]
                self.client_stream = self.client_stream or _is_client_stream(self._header)
            received(data)
        xmpp.data_received = data_received

    def _failed(self, error: object) -> None:
        self.failure = error

    def _stream_error(self, error: Any) -> None:
        self.stream_error = error

    def _connected(self, _event: object) -> None:
        self.failure, self.tcp_connected, self._header = None, True, b""


def _is_client_stream(header: bytes) -> bool:
    start = header.find(b"<stream:stream")
    end = header.find(b">", start)
    if start < 0 or end < 0:
        return False
    opening = header[start:end]
    return b"xmlns='jabber:client'" in opening or b'xmlns="jabber:client"' in opening


def connect_failure(watch: _ConnectionWatch, jid: str, host: str, port: int, timeout: float) -> str:
    """One line saying why the component has no session with its server."""
    if watch.client_stream:
        return (f"{host}:{port} is the server's client (c2s) port, where VENs log in: it answered with a client "
                "stream. Give [component] port the server's component port (Prosody: component_ports, usually "
                "5347; ejabberd: the ejabberd_service listener)")
    if watch.stream_error is not None:
        condition, text = watch.stream_error["condition"], watch.stream_error["text"]
        said = f" (server said: {condition}{': ' + text if text else ''})"
        if condition == "not-authorized":
            return f"handshake refused at {host}:{port}: check the component secret{said}"
        if condition == "conflict":
            return f"handshake refused at {host}:{port}: another component is connected as {jid}{said}"
        if condition in ("host-unknown", "improper-addressing"):
            return (f"handshake refused at {host}:{port}: the server does not serve component {jid}; declare it "
                    f"there (Prosody: Component \"{jid}\" with component_secret){said}")
        return f"handshake refused at {host}:{port}{said}"
    failure = watch.failure
    if isinstance(failure, ConnectionRefusedError):
        return f"connection refused at {host}:{port}: nothing listens there (retried for {timeout:g} s)"
    if isinstance(failure, OSError):
        return f"cannot connect to {host}:{port}: {failure.strerror or failure} (retried for {timeout:g} s)"
    if failure is not None:
        return f"cannot connect to {host}:{port}: {failure} (retried for {timeout:g} s)"
    if watch.tcp_connected:
        return (f"timeout: connected to {host}:{port} but no component session within {timeout:g} s "
                "(is it the server's component port?)")
    return f"timeout: no connection to {host}:{port} within {timeout:g} s"


def _on_signals(stopping: asyncio.Event) -> None:
    def stop(signum: int) -> None:
        if stopping.is_set():
            log.warning("already stopping")
        else:
            log.info("%s received: stopping", signal.Signals(signum).name)
            stopping.set()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)


def _start_line(config: "VTNConfig", handlers: dict[str, Callable[..., Any]]) -> None:
    from .config import redact_url
    component = config.component
    log.info("VTN %s connecting to %s:%d as %s (secret from %s, store %s, handlers: %s)", config.vtn_id,
             component.host, component.port, component.jid, component.secret_source, redact_url(config.store),
             ", ".join(sorted(handlers)) or "none")


async def serve(config: "VTNConfig", handlers: dict[str, Callable[..., Any]], arguments: dict[str, Any],
                connect_timeout: float) -> int:
    """Connect the VTN and serve until SIGTERM or SIGINT. Returns the exit code: 0 stopped (also
    when stopped before it was connected), 1 the server could not be reached, 2 the store cannot be used."""
    from ..runtime.stanzas import StreamFailed
    from ..vtn import VTNComponent
    from .config import MODULE_HOOKS
    try:
        vtn = VTNComponent(**arguments)
    except (ValueError, OSError, sqlite3.Error, RuntimeError) as exc:
        _say("run", f"cannot start: {exc}")
        return 2
    on_start = handlers.get("on_start")
    for name, handler in handlers.items():
        if name not in MODULE_HOOKS:
            vtn.add_handler(name, handler)
    stopping = asyncio.Event()
    _on_signals(stopping)
    watch = _ConnectionWatch(vtn.component.xmpp)      # before connecting: the first failure counts too
    _start_line(config, handlers)
    connecting = asyncio.ensure_future(vtn.run(timeout=connect_timeout))
    stop_requested = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({connecting, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
    elif connecting.exception() is None:
        log.info("serving; stop with SIGTERM or Ctrl-C")
        hook = _start_hook(on_start, vtn, stopping) if on_start is not None else None
        await stop_requested
        if hook is not None and not hook.done():
            hook.cancel()
            await asyncio.gather(hook, return_exceptions=True)
        if hook is not None and not hook.cancelled() and hook.exception() is not None:
            stop_requested.cancel()
            await vtn.stop()
            return 1
    stop_requested.cancel()
    failure = connecting.exception() if not connecting.cancelled() else None
    await vtn.stop()                                  # also after a failed start: it ends what run() began
    if failure is None:
        log.info("stopped")
        return 0
    if isinstance(failure, StreamFailed):
        component = config.component
        _say("run", connect_failure(watch, component.jid, component.host, component.port, connect_timeout))
    else:
        log.error("the VTN could not start", exc_info=failure)
    return 1


def _start_hook(on_start: Callable[..., Any], vtn: Any, stopping: asyncio.Event) -> asyncio.Task:
    """Run the handler module's ``on_start(vtn)`` (function or coroutine) beside serving. If it
    fails, the VTN stops (exit 1): what it was to set up (events, reports) did not happen."""
    from ..services.handlers import invoke

    async def call() -> None:
        try:
            await invoke(on_start, vtn)
        except Exception:
            log.exception("on_start failed: stopping")
            stopping.set()
            raise
    return asyncio.get_running_loop().create_task(call())


def _run(args: argparse.Namespace) -> int:
    from .config import ConfigError, configure_logging, load_config, load_handlers, vtn_arguments
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _config_errors("run", exc)
    configure_logging(config.log, [config.component.secret])
    logging.captureWarnings(True)                # warnings.warn from add_handler and friends, in the log
    try:
        handlers, warnings = load_handlers(config.handlers, config.path.parent) if config.handlers else \
            ({}, ["handlers: none configured: every VEN's registration will be refused"])
        arguments = vtn_arguments(config)
    except ConfigError as exc:
        return _config_errors("run", ConfigError(exc.errors, config.path))
    for warning in warnings:
        log.warning("%s", warning)
    if args.check:
        component = config.component
        print(f"{config.path}: OK: VTN {config.vtn_id} as {component.jid} at {component.host}:{component.port}, "
              f"handlers: {', '.join(sorted(handlers)) or 'none'}")
        return 0
    return asyncio.run(serve(config, handlers, arguments, args.connect_timeout))


# -- status ------------------------------------------------------------------------------------------

def _status(args: argparse.Namespace) -> int:
    from . import status
    from .config import ConfigError, load_config, redact_url
    source = args.store
    if args.config:
        try:
            source = load_config(args.config, require_secret=False).store
        except ConfigError as exc:
            return _config_errors("status", exc)
    try:
        store = status.open_for_reading(source)
    except status.StoreUnavailable as exc:
        _say("status", str(exc))
        return 2
    try:
        facts = status.gather(store)
    except status.READ_ERRORS as exc:           # the server went away mid-read, say: one line, no traceback
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        _say("status", f"reading {redact_url(str(source))} failed: {reason}")
        return 2
    finally:
        store.close()
    print(status.to_json(facts) if args.json else status.render_text(facts, redact_url(str(source))))
    return 0


# -- validate ----------------------------------------------------------------------------------------

def _validate(args: argparse.Namespace) -> int:
    from . import validate
    try:
        validate.xsd()                            # a missing bundle is one message, not one per file
    except SchemaBundleError as exc:
        _say("validate", str(exc))
        return 2
    verdicts = []
    for path in args.files:
        verdict = validate.explain_file(path)
        verdicts.append(verdict)
        print(validate.render(verdict), flush=True)
    return 0 if all(verdict.valid for verdict in verdicts) else 1


# -- token -------------------------------------------------------------------------------------------

def _read_token(given: str | None) -> str:
    """The token to hash: the argument, else a prompt on a terminal, else the first line of stdin."""
    if given is not None:
        _say("token", "warning: a token on the command line is visible to other users (ps, shell history); "
                      "prefer `xmpp-vtn token hash` and typing or piping it")
        return given
    if sys.stdin.isatty():
        import getpass
        return getpass.getpass("token: ")
    return sys.stdin.readline().strip()


def _token(args: argparse.Namespace) -> int:
    from ..control.auth import hash_token, new_token
    if args.action == "new":
        if args.token is not None:
            _say("token", "`token new` takes no argument: it makes the token")
            return 2
        token = new_token()
        print(f"token: {token}\nhash:  {hash_token(token)}")
        print("Give the token to the operator (Authorization: Bearer TOKEN, or the dashboard's login form); "
              "put only the hash in the configuration's [control] tokens.", file=sys.stderr)
        return 0
    try:
        print(hash_token(_read_token(args.token)))
    except ValueError as exc:
        _say("token", str(exc))
        return 2
    return 0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds more than 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``xmpp-vtn``."""
    parser = argparse.ArgumentParser(prog="xmpp-vtn", description="OpenADR 2.0b VTN over XMPP")
    commands = parser.add_subparsers(dest="command", required=True)
    schemas = commands.add_parser("schemas", help="install or verify the OpenADR 2.0b XSD set")
    schemas.add_argument("action", choices=["install", "verify"])
    schemas.add_argument("--wheel", help="install from this openleadr wheel file instead of downloading it")
    schemas.set_defaults(run=_schemas)

    _add_ven_sim(commands)

    run = commands.add_parser("run", help="run the VTN from a configuration file until SIGTERM or Ctrl-C")
    run.add_argument("--config", required=True, metavar="FILE", help="the TOML configuration (see README)")
    run.add_argument("--connect-timeout", type=_positive_seconds, default=30.0, metavar="SECONDS",
                     help="give up (exit 1) when the XMPP server cannot be reached within this time (default 30)")
    run.add_argument("--check", action="store_true",
                     help="check the configuration and the handler module, then exit without connecting")
    run.set_defaults(run=_run)

    status = commands.add_parser("status", help="show what the store holds: VENs, events, subscriptions, owed pushes")
    source = status.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", metavar="URL_OR_PATH", help="the store: a SQLite file, sqlite:///path or a URL")
    source.add_argument("--config", metavar="FILE", help="take the store from this configuration file")
    status.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    status.set_defaults(run=_status)

    validate = commands.add_parser("validate", help="check OpenADR payload files against the 2.0b schema "
                                                    "and explain what is wrong")
    validate.add_argument("files", nargs="+", metavar="FILE", help="oadrPayload (or oadrSignedObject) XML files")
    validate.set_defaults(run=_validate)

    from . import event_command
    event_command.add_parser(commands, _ShowDefaults)
    token = commands.add_parser("token", help="make a control API token, or hash one for the configuration")
    token.add_argument("action", choices=["new", "hash"],
                       help="new: a random token and its hash; hash: the hash of a token read from stdin or a prompt")
    token.add_argument("token", nargs="?", help=argparse.SUPPRESS)      # accepted, but argv shows in ps
    token.set_defaults(run=_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xmpp-vtn`` console script."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
