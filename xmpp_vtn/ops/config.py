"""The operator's configuration file: ``xmpp-vtn run --config vtn.toml``.

:func:`load_config` reads a TOML file into a frozen :class:`VTNConfig` and checks every key before
anything connects. Every problem names its key (``component.port: must be an integer between 1
and 65535, got "abc"``) and all of them are reported at once, as one :class:`ConfigError`.
:func:`load_handlers` imports the application's handler module; :func:`vtn_arguments` turns a
config into :class:`~xmpp_vtn.VTNComponent`'s arguments.

Relative paths (``store``, ``handlers``, ``component.secret_file``) are relative to the config
file, so the VTN behaves the same whatever directory it is started from.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import json
import logging
import math
import os
import re
import sys
import traceback
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

from ..control.auth import check_token_hash
from ..control.server import ControlTLS
from ..runtime.cluster import BALANCINGS
from ..runtime.outbox import DEFAULT_PUSH_CONCURRENCY
from ..services.handlers import HANDLER_NAMES, signature_problem
from ..services.quotas import Quotas

DEFAULT_STORE_NAME = "xmpp-vtn.sqlite3"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
SECRET_KEYS = ("secret", "secret_file", "secret_env")

# The keys each table takes: anything else is an error (a typo must not silently become a default).
_TOP_KEYS = ("vtn_id", "store", "handlers", "push_timeout", "push_concurrency", "requested_poll_freq",
             "tune_gc", "operators", "component", "liveness", "log", "cluster", "http", "control", "quotas")
_TABLES = {
    "component": ("jid", *SECRET_KEYS, "host", "port"),
    "http": ("host", "port", "cert", "key", "ca_file", "path_prefix", "allow_insecure", "verify_message_signatures"),
    "liveness": ("ping_interval", "offline_after"),
    "log": ("level", "format"),
    "cluster": ("instance_id", "lease_seconds", "balancing"),
    "control": ("host", "port", "tokens", "tls_cert", "tls_key", "tls_ca"),
}
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")


class ConfigError(ValueError):
    """The configuration cannot be used. ``errors`` holds one line per problem, each naming its key."""

    def __init__(self, errors: list[str], source: str | Path | None = None):
        self.errors = list(errors)
        self.source = str(source) if source is not None else None
        prefix = f"{self.source}: " if self.source else ""
        super().__init__("\n".join(prefix + error for error in self.errors))


@dataclass(frozen=True)
class ComponentConfig:
    """``[component]``: how the VTN reaches its XMPP server. The secret is never shown in a repr."""

    jid: str
    secret: str = field(repr=False)
    secret_source: str            # where the secret came from, for logs: "environment variable XMPP_VTN_SECRET"
    host: str = "127.0.0.1"
    port: int = 5347


@dataclass(frozen=True)
class LivenessConfig:
    """``[liveness]``: ping every ``ping_interval`` seconds (0: never); offline after that many misses."""

    ping_interval: float = 60.0
    offline_after: int = 3


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: the level and the format, "text" (one line per record) or "json" (one object per line)."""

    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class ClusterConfig:
    """``[cluster]``: this instance's name and lease length, for several VTNs sharing one store,
    and how the XMPP server shares the VENs' stanzas among them (``balancing``)."""

    instance_id: str | None = None
    lease_seconds: float = 15.0
    balancing: str = "random"


@dataclass(frozen=True)
class HttpConfig:
    """``[http]``: the simpleHTTP listener, with OpenLEADR's names (``port`` absent: no listener).
    Paths are absolute."""

    host: str = "127.0.0.1"
    port: int | None = None
    cert: str | None = None
    key: str | None = None
    ca_file: str | None = None
    path_prefix: str = "/OpenADR2/Simple/2.0b"
    allow_insecure: bool = False
    verify_message_signatures: bool = True


@dataclass(frozen=True)
class ControlConfig:
    """``[control]``: the control API, dashboard and metrics listener (off without ``port``).

    ``tokens`` are hashes (``xmpp-vtn token hash``), never tokens: a list, or a table naming each
    (the name is who made a change in the exchange log). ``tls_cert``/``tls_key`` turn on TLS;
    ``tls_ca`` also accepts client certificates signed by that CA.
    """

    host: str = "127.0.0.1"
    port: int | None = None
    tokens: tuple[tuple[str | None, str], ...] = ()
    tls: ControlTLS | None = None


@dataclass(frozen=True)
class VTNConfig:
    """A validated configuration. Paths are absolute; ``store`` is a path, ``:memory:`` or a URL."""

    path: Path
    vtn_id: str
    component: ComponentConfig
    store: str
    handlers: str | None = None
    push_timeout: float = 10.0
    push_concurrency: int = DEFAULT_PUSH_CONCURRENCY
    requested_poll_freq: float | None = None
    liveness: LivenessConfig = LivenessConfig()
    log: LogConfig = LogConfig()
    cluster: ClusterConfig = ClusterConfig()
    control: ControlConfig = ControlConfig()
    #: Bare JIDs allowed to run the XEP-0050 operator commands.
    operators: tuple[str, ...] = ()
    http: HttpConfig = HttpConfig()
    #: The per-VEN limits ([quotas] table; see docs/operations.md): Quotas field names, any omitted
    #: keeps its default.
    quotas: Quotas = Quotas()
    #: Tune the garbage collector of the process ``xmpp-vtn run`` starts (VTNComponent's tune_gc).
    tune_gc: bool = True


class _Invalid(Exception):
    """One value is wrong; the message says how (the caller prefixes the key)."""


def show(value: Any) -> str:
    """A value as the TOML file spells it, for error messages: ``"abc"``, ``true``, ``1.5``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


class _Table:
    """One TOML table being read: takes keys one by one, collects errors, and reports unknown keys."""

    def __init__(self, data: dict, prefix: str, known: tuple[str, ...], errors: list[str]):
        self.data, self.prefix, self.known, self.errors = data, prefix, known, errors

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, key: str, message: str) -> None:
        self.errors.append(f"{self.name(key)}: {message}")

    def get(self, key: str, check: Callable[[Any], Any], default: Any = None, required: bool = False) -> Any:
        """The checked value of ``key``; ``default`` when absent (an error first, when ``required``)."""
        if key not in self.data:
            if required:
                self.error(key, "missing (required)")
            return default
        try:
            return check(self.data[key])
        except _Invalid as problem:
            self.error(key, str(problem))
            return default

    def unknown_keys(self) -> None:
        for key in self.data:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1)
                hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(self.known)}"
                self.errors.append(f"{self.name(key)}: unknown key{hint}")


# -- value checks: each returns the value to keep or raises _Invalid -----------------------------

def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"must be a non-empty string, got {show(value)}")
    return value


def _integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        # bool is an int in Python; `port = true` is still a mistake.
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            span = f"between {low} and {high}" if high is not None else f"of at least {low}"
            raise _Invalid(f"must be an integer {span}, got {show(value)}")
        return value
    return check


def _seconds(allow_zero: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
                value < 0 or (value == 0 and not allow_zero):
            least = "0 or more" if allow_zero else "more than 0"
            raise _Invalid(f"must be a number of seconds, {least}, got {show(value)}")
        return float(value)
    return check


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise _Invalid(f"must be one of {', '.join(show(option) for option in options)}, got {show(value)}")
        return value.lower()
    return check


def _operator_jids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of bare JIDs such as [\"ops@example.com\"], got {show(value)}")
    jids = []
    for item in value:
        text = _text(item).strip()
        local, _, domain = text.partition("@")
        if not local or "/" in text or not _DOMAIN.match(domain):
            raise _Invalid(f"{show(item)} is not a bare JID such as \"ops@example.com\"")
        jids.append(text)
    return tuple(jids)


def _component_jid(value: Any) -> str:
    text = _text(value)
    if "@" in text or "/" in text or not _DOMAIN.match(text):
        raise _Invalid(f"must be the component's bare domain, such as \"vtn.example.com\", got {show(value)}")
    return text


def _store(base: Path) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _text(value).strip()
        if text == ":memory:":
            return text
        if text.startswith("sqlite:///"):
            text = text[len("sqlite:///"):]       # sqlite:////abs/path keeps its leading slash
        elif text.startswith(("postgresql://", "postgres://")):
            return text                           # a database server: nothing to check on disk
        elif "://" in text:
            raise _Invalid(f"must be a file path, \"sqlite:///path\", \":memory:\" or a \"postgresql://\" URL, "
                           f"got {show(redact_url(value))}")
        path = _resolve(base, text)
        if path.is_dir():
            raise _Invalid(f"{path} is a directory; give a file name inside it")
        if not path.parent.is_dir():
            raise _Invalid(f"directory {path.parent} does not exist")
        return str(path)
    return check


def _handlers(base: Path) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _text(value).strip()
        if text.endswith(".py") or "/" in text or os.sep in text:
            path = _resolve(base, text)
            if not path.is_file():
                raise _Invalid(f"no such file: {path}")
            return str(path)
        if not _MODULE_NAME.match(text):
            raise _Invalid(f"must be a Python module name (my_handlers) or a .py file path, got {show(value)}")
        if _find_module(text, base) is None:
            raise _Invalid(f"no module named {text!r} (looked in {base} and on the Python path)")
        return text
    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {show(value)}")
    return value


def _readable_file(base: Path) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        path = _resolve(base, _text(value).strip())
        if not path.is_file():
            raise _Invalid(f"no such file: {path}")
        return str(path)
    return check


def _path_prefix(value: Any) -> str:
    text = _text(value).strip()
    if not text.startswith("/") or any(char.isspace() for char in text):
        raise _Invalid(f"must be a URL path starting with \"/\", such as \"/OpenADR2/Simple/2.0b\", got {show(value)}")
    return text


def _http(table: "_Table", base: Path) -> HttpConfig:
    """``[http]``, checked as a whole: TLS files go together, and plain HTTP must be asked for."""
    files = {key: table.get(key, _readable_file(base)) for key in ("cert", "key", "ca_file")}
    config = HttpConfig(
        host=table.get("host", _text, default="127.0.0.1"),
        port=table.get("port", _integer(0, 65535)), **files,
        path_prefix=table.get("path_prefix", _path_prefix, default="/OpenADR2/Simple/2.0b"),
        allow_insecure=table.get("allow_insecure", _boolean, default=False),
        verify_message_signatures=table.get("verify_message_signatures", _boolean, default=True))
    given = set(table.data)
    if ("cert" in given) != ("key" in given):
        table.error("cert" if "key" in given else "key", "cert and key go together (the VTN's certificate and "
                    "its private key)")
    if "ca_file" in given and "cert" not in given:
        table.error("ca_file", "verifying VEN certificates needs TLS: give cert and key too")
    if given and "port" not in given:
        table.error("port", "missing; the [http] table starts a simpleHTTP listener on this port")
    elif "port" in given and not {"cert", "key", "ca_file"} <= given and not config.allow_insecure:
        table.error("allow_insecure", "simpleHTTP without TLS client certificates (cert, key and ca_file) "
                    "authenticates nobody: add them, or set allow_insecure = true to accept that risk")
    return config


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _find_module(name: str, base: Path) -> Any:
    _on_path(base)
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):          # a missing parent package raises instead of returning None
        return None


def _on_path(directory: Path) -> None:
    """Let the handler module import its neighbours (and be found by name) from ``directory``."""
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))


def redact_url(value: Any) -> Any:
    """A store URL without its password (``postgresql://vtn:***@db/vtn``), safe to log or show."""
    if not isinstance(value, str):
        return value
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]+):[^@/]*@", r"\1:***@", value)


def _token_hashes(value: Any) -> tuple[tuple[str | None, str], ...]:
    # Never echo what was given: a token pasted in place of its hash is a secret.
    if isinstance(value, list):
        named = [(None, item) for item in value]
    elif isinstance(value, dict):
        named = list(value.items())
    else:
        raise _Invalid("must be a list of token hashes, or a table of name = hash")
    hashes = []
    for index, (name, item) in enumerate(named):
        try:
            hashes.append((name, check_token_hash(item)))
        except ValueError as error:
            raise _Invalid(f"{name if name is not None else f'[{index}]'}: {error}") from None
    return tuple(hashes)


def _control(table: _Table, base: Path) -> ControlConfig:
    host = table.get("host", _text, default="127.0.0.1")
    port = table.get("port", _integer(1, 65535))
    tokens = table.get("tokens", _token_hashes, default=())
    files = {}
    for key in ("tls_cert", "tls_key", "tls_ca"):
        path = table.get(key, _text)
        if path is not None:
            resolved = _resolve(base, path)
            if not resolved.is_file():
                table.error(key, f"no such file: {resolved}")
            files[key] = str(resolved)
    if ("tls_cert" in files) != ("tls_key" in files):
        table.error("tls_key" if "tls_cert" in files else "tls_cert", "give both tls_cert and tls_key, or neither")
    elif "tls_ca" in files and "tls_cert" not in files:
        table.error("tls_ca", "client certificates need TLS: give tls_cert and tls_key too")
    if port is not None and not tokens and "tls_ca" not in files:
        table.error("tokens", "the listener would refuse everyone: give token hashes (`xmpp-vtn token new`) or tls_ca")
    tls = ControlTLS(files["tls_cert"], files["tls_key"], files.get("tls_ca")) \
        if "tls_cert" in files and "tls_key" in files else None
    return ControlConfig(host, port, tokens, tls)


# -- the secret ------------------------------------------------------------------------------------

def _secret(table: _Table, base: Path) -> tuple[str, str]:
    """(secret, where it came from) from exactly one of secret, secret_file, secret_env."""
    given = [key for key in SECRET_KEYS if key in table.data]
    if not given:
        table.errors.append(f"{table.prefix}secret: missing; give secret, secret_file (a file holding it) "
                            "or secret_env (an environment variable holding it)")
        return "", ""
    if len(given) > 1:
        table.errors.append(f"{table.prefix}{given[0]}: give only one of {', '.join(given)}")
        return "", ""
    key, value = given[0], table.data[given[0]]
    if not isinstance(value, str) or not value:
        # Never echo what was given: it may be the secret itself.
        table.error(key, "must be a non-empty string")
        return "", ""
    if key == "secret":
        return value, "the config file"
    if key == "secret_env":
        secret = os.environ.get(value, "")
        if not secret:
            table.error(key, f"environment variable {value} is not set or empty")
        return secret, f"environment variable {value}"
    path = _resolve(base, value)
    try:
        # A trailing newline is how editors and `echo` write files; it is not part of the secret.
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        table.error(key, f"cannot read {path}: {exc.strerror or exc}")
        return "", ""
    if not secret:
        table.error(key, f"{path} is empty")
    return secret, f"file {path}"


# -- loading ---------------------------------------------------------------------------------------

def _toml_loads(text: str) -> dict:
    try:
        import tomllib                            # Python 3.11+
    except ModuleNotFoundError:                   # pragma: no cover - Python 3.10 only
        try:
            import tomli as tomllib               # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError(["reading TOML needs Python 3.11 or later, or the tomli package on "
                               "Python 3.10: pip install tomli"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"]) from None


def _subtable(data: dict, name: str, errors: list[str]) -> dict:
    value = data.get(name, {})
    if not isinstance(value, dict):
        errors.append(f"{name}: must be a table ([{name}]), got {show(value)}")
        return {}
    return value


def parse_config(data: dict, base: Path, path: Path | None = None, require_secret: bool = True) -> VTNConfig:
    """Check a parsed TOML document; ``base`` is the directory relative paths start from.

    Raises :class:`ConfigError` listing every problem. ``require_secret=False`` accepts a config
    whose secret cannot be read here (for tools that only read the store).
    """
    errors: list[str] = []
    top = _Table(data, "", _TOP_KEYS, errors)
    top.unknown_keys()
    vtn_id = top.get("vtn_id", _text, required=True)
    store = top.get("store", _store(base), default=str(base / DEFAULT_STORE_NAME))
    handlers = top.get("handlers", _handlers(base))
    push_timeout = top.get("push_timeout", _seconds(allow_zero=False), default=10.0)
    push_concurrency = top.get("push_concurrency", _integer(1), default=DEFAULT_PUSH_CONCURRENCY)
    poll = top.get("requested_poll_freq", _seconds(allow_zero=False))
    operators = top.get("operators", _operator_jids, default=())
    tune_gc = top.get("tune_gc", _boolean, default=True)

    tables = {name: _Table(_subtable(data, name, errors), f"{name}.", keys, errors) for name, keys in _TABLES.items()}
    for table in tables.values():
        table.unknown_keys()
    component = tables["component"]
    # Only a [component] table that is there is searched for its keys: one error says it is missing.
    readable = isinstance(data.get("component"), dict)
    if "component" not in data:
        errors.append("component: missing; add a [component] table with jid and secret")
    jid = component.get("jid", _component_jid, required=readable)
    # Without require_secret its problems go to a list nobody reads: `xmpp-vtn status` reads the
    # store named in the config and never needs the secret.
    secret_table = _Table(component.data, component.prefix, component.known, errors if require_secret else [])
    secret, secret_source = _secret(secret_table, base) if readable else ("", "")
    host = component.get("host", _text, default="127.0.0.1")
    port = component.get("port", _integer(1, 65535), default=5347)
    liveness = tables["liveness"]
    ping_interval = liveness.get("ping_interval", _seconds(allow_zero=True), default=60.0)
    offline_after = liveness.get("offline_after", _integer(1), default=3)
    log = tables["log"]
    level = log.get("level", _choice(LOG_LEVELS), default="info")
    log_format = log.get("format", _choice(LOG_FORMATS), default="text")
    cluster = tables["cluster"]
    instance_id = cluster.get("instance_id", _text)
    lease_seconds = cluster.get("lease_seconds", _seconds(allow_zero=False), default=15.0)
    balancing = cluster.get("balancing", _choice(BALANCINGS), default="random")
    http = _http(tables["http"], base)
    control = _control(tables["control"], base)

    quotas = _quotas(_subtable(data, "quotas", errors), errors)

    if errors:
        raise ConfigError(errors, path)
    return VTNConfig(
        path=path or base, vtn_id=vtn_id, store=store, handlers=handlers,
        component=ComponentConfig(jid, secret, secret_source, host, port),
        push_timeout=push_timeout, push_concurrency=push_concurrency, requested_poll_freq=poll,
        liveness=LivenessConfig(ping_interval, offline_after), log=LogConfig(level, log_format),
        cluster=ClusterConfig(instance_id, lease_seconds, balancing), operators=operators, http=http, control=control,
        quotas=quotas, tune_gc=tune_gc)


def _quotas(values: dict, errors: list[str]) -> Quotas:
    """The [quotas] table as :class:`Quotas` (``stale_report_update`` in seconds)."""
    known = tuple(item.name for item in fields(Quotas))
    table = _Table(values, "quotas.", known, errors)
    table.unknown_keys()
    chosen: dict[str, Any] = {}
    for name in known:
        default = getattr(Quotas(), name)
        if isinstance(default, timedelta):
            check = _seconds(allow_zero=False)
        elif isinstance(default, float):
            check = _seconds(allow_zero=False)
        else:
            check = _integer(1)
        value = table.get(name, check)
        if value is not None:
            chosen[name] = timedelta(seconds=value) if isinstance(default, timedelta) else value
    try:
        return Quotas(**chosen)
    except ValueError as error:
        errors.append(f"quotas: {error}")
        return Quotas()


def load_config(path: str | Path, require_secret: bool = True) -> VTNConfig:
    """Read and check the TOML file at ``path``. Raises :class:`ConfigError` naming every bad key.

    ``require_secret=False``: see :func:`parse_config`.

    >>> load_config("/etc/xmpp-vtn/vtn.toml").component.port      # doctest: +SKIP
    5347
    """
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the configuration: {exc.strerror or exc}"], path) from None
    try:
        data = _toml_loads(text)
    except ConfigError as exc:
        raise ConfigError(exc.errors, path) from None
    return parse_config(data, path.parent, path, require_secret)


# -- handlers --------------------------------------------------------------------------------------

def _import_handlers(spec: str, base: Path) -> ModuleType:
    _on_path(base)
    if not spec.endswith(".py"):
        return importlib.import_module(spec)
    path = Path(spec)
    _on_path(path.parent)                          # so that it can import the modules beside it
    # Its own name when free (tracebacks and pickles read naturally), a private one otherwise.
    name = path.stem if path.stem not in sys.modules and path.stem.isidentifier() else f"_xmpp_vtn_handlers_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``, where the import failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) or not frames:
        return ""
    return f" at {frames[-1].filename}:{frames[-1].lineno}"


#: Functions of a handler module that are not VTN handlers: ``on_start(vtn)`` is called by
#: ``xmpp-vtn run`` with the running :class:`~xmpp_vtn.VTNComponent` once it is connected (a plain
#: function or a coroutine; one still running when the VTN stops is cancelled).
MODULE_HOOKS = frozenset({"on_start"})


def _takes_one(function: Callable[..., Any]) -> bool:
    try:
        inspect.signature(function).bind(object())
    except TypeError:
        return False
    except ValueError:
        return True                                   # no signature to go by
    return True


def load_handlers(spec: str, base: Path | None = None) -> tuple[dict[str, Callable[..., Any]], list[str]]:
    """Import the handler module ``spec`` (a module name or a .py path) and pick its handlers.

    Returns ``(handlers, warnings)``: the functions named after a handler xmpp-vtn calls (see
    :data:`~xmpp_vtn.services.handlers.HANDLER_NAMES`) or a module hook (:data:`MODULE_HOOKS`), and one warning per ``on_...`` function that
    is not one of them (naming the closest valid name), or when no VEN could ever register.
    Raises :class:`ConfigError` when the module cannot be imported.
    """
    base = base or Path.cwd()
    try:
        module = _import_handlers(spec, base)
    except Exception as exc:
        raise ConfigError([f"handlers: importing {spec} failed{_where(exc)}: {type(exc).__name__}: {exc}"]) from None
    found: dict[str, Callable[..., Any]] = {}
    warnings: list[str] = []
    errors: list[str] = []
    for name, value in vars(module).items():
        if not name.startswith("on_"):
            continue
        if name in MODULE_HOOKS:
            if inspect.isclass(value) or not callable(value):
                errors.append(f"handlers: {name} in {spec} must be a function, not {type(value).__name__}")
            elif not _takes_one(value):
                errors.append(f"handlers: {name} in {spec} must take one argument, the running VTN: {name}(vtn)")
            else:
                found[name] = value
        elif name in HANDLER_NAMES:
            if inspect.isclass(value) or not callable(value):
                errors.append(f"handlers: {name} in {spec} must be a function, not {type(value).__name__}")
            elif signature_problem(name, value) is not None:
                errors.append(f"handlers: {spec}: {signature_problem(name, value)}")
            else:
                found[name] = value
        elif callable(value):
            close = difflib.get_close_matches(name, sorted(HANDLER_NAMES | MODULE_HOOKS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; handler names: {', '.join(sorted(HANDLER_NAMES))}"
            warnings.append(f"handlers: {name} in {spec} is not a handler name and will never be called{hint}")
    if errors:
        raise ConfigError(errors)
    if "on_create_party_registration" not in found:
        warnings.append(f"handlers: {spec} has no on_create_party_registration: every VEN's registration "
                        "will be refused")
    return found, warnings


# -- to VTNComponent -------------------------------------------------------------------------------

def vtn_arguments(config: VTNConfig) -> dict[str, Any]:
    """``VTNComponent(**arguments)`` for ``config``."""
    arguments: dict[str, Any] = dict(
        vtn_id=config.vtn_id, jid=config.component.jid, secret=config.component.secret,
        host=config.component.host, port=config.component.port, store=config.store,
        push_timeout=config.push_timeout, push_concurrency=config.push_concurrency,
        requested_poll_freq=timedelta(seconds=config.requested_poll_freq) if config.requested_poll_freq else None,
        ping_interval=timedelta(seconds=config.liveness.ping_interval) if config.liveness.ping_interval else None,
        offline_after=config.liveness.offline_after, lease_seconds=config.cluster.lease_seconds,
        instance_id=config.cluster.instance_id, balancing=config.cluster.balancing, operators=config.operators,
        quotas=config.quotas, tune_gc=config.tune_gc)
    if config.http.port is not None:
        arguments.update(http_host=config.http.host, http_port=config.http.port, http_cert=config.http.cert,
                         http_key=config.http.key, http_ca_file=config.http.ca_file,
                         http_path_prefix=config.http.path_prefix, http_allow_insecure=config.http.allow_insecure,
                         verify_message_signatures=config.http.verify_message_signatures)
    control = config.control
    if control.port is not None:
        tokens = control.tokens
        arguments.update(control_host=control.host, control_port=control.port, control_tls=control.tls,
                         control_tokens={name: value for name, value in tokens} if all(name for name, _ in tokens)
                         else [value for _, value in tokens])
    return arguments


# -- logging ---------------------------------------------------------------------------------------

REDACTED = "********"
MIN_REDACTED = 6
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and blanks out secrets wherever they appear in the finished line,
    whichever library logged them and however (arguments, exceptions, stanzas)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]):
        super().__init__()
        self.inner = inner
        # A secret of a few characters would blank out every word containing them; one that
        # short protects nothing anyway.
        kept = [secret for secret in secrets if len(secret) >= MIN_REDACTED]
        # Also as JSON writes it, for a secret with quotes or backslashes in a JSON log line.
        self.secrets = sorted({form for secret in kept for form in (secret, json.dumps(secret)[1:-1])},
                              key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


def configure_logging(log: LogConfig, secrets: Iterable[str] = (), stream: Any = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as ``log`` says, with ``secrets`` blanked out.

    Replaces the root logger's handlers, so it is the one place records go. Returns the handler.
    """
    inner = JSONFormatter() if log.format == "json" else logging.Formatter(TEXT_FORMAT)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(inner, list(secrets)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = getattr(logging, log.level.upper())
    root.setLevel(level)
    # APScheduler logs every job it adds or runs at INFO (each event transition, each report):
    # that is debugging detail, not an operator's log.
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING) if level > logging.DEBUG else level)
    return handler
