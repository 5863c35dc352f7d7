"""Who may use the control listener, and how an operator configures it: token hashes (and the
``xmpp-vtn token`` command), the ``[control]`` table, client certificates over real TLS, and the
OpenAPI document matching the routes the listener serves."""
from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from openapi_spec_validator import validate

from xmpp_vtn.control.auth import Sessions, Tokens, bearer_token, hash_token, new_token
from xmpp_vtn.control.openapi import document
from xmpp_vtn.control.server import ControlTLS, build_app
from xmpp_vtn.ops.config import ConfigError, load_config, vtn_arguments
from control_scene import TOKEN, control_scene
from xmpp_scene import run

REPO = Path(__file__).resolve().parent.parent
MINIMAL = '''
vtn_id = "VTN-1"
[component]
jid = "vtn.example.com"
secret = "component-secret"
'''


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xmpp_vtn", *args], capture_output=True, text=True, input=stdin,
                          timeout=30, cwd=REPO, env={**os.environ})


# -- tokens ----------------------------------------------------------------------------------------

def test_a_token_hash_is_its_sha256_and_short_or_spaced_tokens_are_refused():
    assert hash_token(TOKEN) == "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()
    for weak in ("password", "x" * 31, "a" * 20 + " " + "b" * 20):
        with pytest.raises(ValueError):
            hash_token(weak)
    token = new_token()
    assert len(token) >= 43 and token != new_token()
    assert hash_token(token).startswith("sha256:")


def test_tokens_name_who_presented_them_and_refuse_plain_tokens_in_the_configuration():
    named = Tokens({"alice": hash_token(TOKEN), "bob": hash_token("b" * 40)})
    assert named.who(TOKEN) == "alice" and named.who("b" * 40) == "bob" and named.who("c" * 40) is None
    unnamed = Tokens([hash_token(TOKEN)])
    assert unnamed.who(TOKEN) == "token " + hash_token(TOKEN)[:15]            # the hash's start, not the token
    with pytest.raises(ValueError, match="never the token itself") as raised:
        Tokens([TOKEN])
    assert TOKEN not in str(raised.value)
    with pytest.raises(TypeError):
        Tokens(hash_token(TOKEN))                                              # one string, not a list
    assert bearer_token(None) is None and bearer_token("Bearer abc") == "abc"
    assert bearer_token("Basic abc") == "" and bearer_token("Bearer a b") == "" and bearer_token("Bearer ") == ""


def test_sessions_expire_and_end_at_logout():
    now = [0.0]
    sessions = Sessions(seconds=60, clock=lambda: now[0])
    first, second = sessions.open("alice"), sessions.open("bob")
    assert first != second and sessions.who(first) == "alice" and sessions.who("guess") is None
    sessions.close(second)
    assert sessions.who(second) is None
    now[0] = 61
    assert sessions.who(first) is None


def test_token_command_hashes_from_stdin_and_new_prints_a_token_and_its_hash():
    hashed = cli("token", "hash", stdin=TOKEN + "\n")
    assert hashed.returncode == 0 and hashed.stdout.strip() == hash_token(TOKEN) and TOKEN not in hashed.stdout
    weak = cli("token", "hash", stdin="short\n")
    assert weak.returncode == 2 and "at least 32 characters" in weak.stderr
    made = cli("token", "new")
    lines = dict(line.split(":", 1) for line in made.stdout.strip().splitlines())
    token, digest = lines["token"].strip(), lines["hash"].strip()
    assert made.returncode == 0 and hash_token(token) == digest
    on_argv = cli("token", "hash", TOKEN)
    assert on_argv.stdout.strip() == hash_token(TOKEN) and "visible to other users" in on_argv.stderr


# -- the [control] table ---------------------------------------------------------------------------

def test_control_table_reaches_vtn_component(tmp_path):
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    path = tmp_path / "vtn.toml"
    path.write_text(MINIMAL + f'''
[control]
host = "127.0.0.1"
port = 8480
tls_cert = "cert.pem"
tls_key = "key.pem"
[control.tokens]
alice = "{hash_token(TOKEN)}"
''')
    arguments = vtn_arguments(load_config(path))
    assert arguments["control_port"] == 8480 and arguments["control_host"] == "127.0.0.1"
    assert arguments["control_tokens"] == {"alice": hash_token(TOKEN)}
    assert arguments["control_tls"] == ControlTLS(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), None)
    path.write_text(MINIMAL + f'[control]\nport = 8480\ntokens = ["{hash_token(TOKEN)}"]\n')
    assert vtn_arguments(load_config(path))["control_tokens"] == [hash_token(TOKEN)]
    path.write_text(MINIMAL)
    assert "control_port" not in vtn_arguments(load_config(path))            # no listener unless asked


def test_control_table_problems_name_their_keys_and_never_echo_a_token(tmp_path):
    path = tmp_path / "vtn.toml"
    path.write_text(MINIMAL + f'''
[control]
port = 70000
tokens = ["{TOKEN}"]
tls_cert = "missing.pem"
tls_ca = "ca.pem"
colour = "red"
''')
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    errors = raised.value.errors
    assert any(error.startswith("control.port: must be an integer between 1 and 65535") for error in errors)
    assert any(error.startswith("control.tokens: [0]: must be a token hash") for error in errors)
    assert any(error.startswith("control.tls_cert: no such file") for error in errors)
    assert any(error.startswith("control.tls_key: give both tls_cert and tls_key") for error in errors)
    assert any(error.startswith("control.colour: unknown key") for error in errors)
    assert TOKEN not in str(raised.value)
    path.write_text(MINIMAL + "[control]\nport = 8480\n")
    with pytest.raises(ConfigError, match="control.tokens: the listener would refuse everyone"):
        load_config(path)


# -- client certificates ---------------------------------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (CN=ops-console) it signed,
    and a client certificate from another CA."""
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", "2", "-subj", f"/CN={ca}", cwd=directory)
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, ca, ext in (("server", "ca", ["-extfile", "server.ext"]), ("client", "ca", []),
                          ("stranger", "other-ca", [])):
        subject = {"server": "127.0.0.1", "client": "ops-console", "stranger": "stranger"}[name]
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={subject}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext, cwd=directory)
    return {name: directory / name for name in ("ca", "server", "client", "stranger")}


def test_a_client_certificate_from_the_configured_ca_lets_a_request_in_over_tls(prosody, tmp_path):
    pki = make_pki(tmp_path)
    tls = ControlTLS(str(pki["server"].with_suffix(".pem")), str(pki["server"].with_suffix(".key")),
                     str(pki["ca"].with_suffix(".pem")))

    def client_context(name: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(pki["ca"].with_suffix(".pem")))
        if name:
            context.load_cert_chain(str(pki[name].with_suffix(".pem")), str(pki[name].with_suffix(".key")))
        return context

    async def scenario():
        async with control_scene(prosody, register=False, authorized=False, control_tls=tls,
                                 control_tokens=[hash_token(TOKEN)]) as (vtn, _, client):
            url = vtn.control_url
            results = {}
            for name in ("client", None):
                async with aiohttp.ClientSession() as session:
                    async with session.get(url + "api/vens", ssl=client_context(name)) as response:
                        results[name] = response.status
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "api/vens", ssl=client_context(None),
                                       headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                    results["token"] = response.status
            async with aiohttp.ClientSession() as session:
                try:
                    async with session.get(url + "api/vens", ssl=client_context("stranger")) as response:
                        results["stranger"] = response.status
                except aiohttp.ClientError:
                    results["stranger"] = "handshake refused"
            return url, results

    url, results = run(scenario())
    assert url.startswith("https://127.0.0.1:")
    assert results == {"client": 200, None: 401, "token": 200, "stranger": "handshake refused"}


# -- the OpenAPI document --------------------------------------------------------------------------

def test_the_openapi_document_is_valid_and_describes_exactly_the_served_routes():
    openapi = document()
    validate(openapi)                                               # OpenAPI 3.0 schema and references
    app = build_app(control=None)          # type: ignore[arg-type]  (the routes, nothing served)
    served = {(route.method, route.resource.canonical) for route in app.router.routes()
              if route.method != "HEAD" and (route.resource.canonical.startswith("/api/")
                                             or route.resource.canonical in ("/metrics", "/healthz"))}
    described = {(method.upper(), path) for path, item in openapi["paths"].items()
                 for method in item if method != "parameters"}
    assert served == described
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert "200" in operation["responses"] or "201" in operation["responses"], (method, path)
                if path != "/healthz":
                    assert "401" in operation["responses"], (method, path)


def test_the_served_openapi_document_is_the_same(prosody):
    async def scenario():
        async with control_scene(prosody, register=False) as (_, _, client):
            async with client.get("/api/openapi.json") as response:
                return response.status, await response.json()

    assert run(scenario()) == (200, document())
