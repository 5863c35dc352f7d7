"""The ``[http]`` table of the TOML configuration: OpenLEADR's names, checked before anything listens."""
from __future__ import annotations

from pathlib import Path

import pytest

from xmpp_vtn import VTNComponent
from xmpp_vtn.ops.config import ConfigError, load_config, vtn_arguments

BASE = '''
vtn_id = "VTN-1"
[component]
jid = "vtn.example.com"
secret = "component-secret"
'''


def config_file(directory: Path, http: str) -> Path:
    path = directory / "vtn.toml"
    path.write_text(BASE + "[http]\n" + http)
    return path


def errors(directory: Path, http: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(config_file(directory, http))
    return raised.value.errors


def test_tls_settings_become_vtn_arguments_with_paths_beside_the_file(tmp_path):
    for name in ("vtn.crt", "vtn.key", "ca.crt"):
        (tmp_path / name).write_text("pem")
    config = load_config(config_file(tmp_path, 'port = 8443\ncert = "vtn.crt"\nkey = "vtn.key"\nca_file = "ca.crt"\n'
                                               'path_prefix = "/oadr"\nverify_message_signatures = false\n'))
    arguments = vtn_arguments(config)
    assert {key: value for key, value in arguments.items() if key.startswith(("http_", "verify"))} == {
        "http_host": "127.0.0.1", "http_port": 8443, "http_cert": str(tmp_path / "vtn.crt"),
        "http_key": str(tmp_path / "vtn.key"), "http_ca_file": str(tmp_path / "ca.crt"),
        "http_path_prefix": "/oadr", "http_allow_insecure": False, "verify_message_signatures": False}


def test_no_http_table_means_no_listener(tmp_path):
    path = tmp_path / "vtn.toml"
    path.write_text(BASE)
    arguments = vtn_arguments(load_config(path))
    assert "http_port" not in arguments
    assert VTNComponent(**{**arguments, "store": ":memory:"}).http is None


def test_plain_http_must_be_asked_for(tmp_path):
    assert errors(tmp_path, "port = 8080\n") == [
        "http.allow_insecure: simpleHTTP without TLS client certificates (cert, key and ca_file) authenticates "
        "nobody: add them, or set allow_insecure = true to accept that risk"]
    config = load_config(config_file(tmp_path, "port = 8080\nallow_insecure = true\n"))
    assert config.http.allow_insecure and config.http.port == 8080


def test_every_bad_key_is_named(tmp_path):
    found = errors(tmp_path, 'port = "x"\ncert = "missing.crt"\nallow_insecure = "yes"\npath_prefix = "oadr"\n'
                             'verify_signatures = true\n')
    assert any(line.startswith("http.port: must be an integer") for line in found)
    assert any(line.startswith("http.cert: no such file") for line in found)
    assert any(line.startswith("http.allow_insecure: must be true or false") for line in found)
    assert any(line.startswith("http.path_prefix: must be a URL path") for line in found)
    assert any(line.startswith("http.verify_signatures: unknown key; did you mean verify_message_signatures?")
               for line in found)
    assert any(line.startswith("http.key: cert and key go together") for line in found)
