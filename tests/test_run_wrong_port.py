"""``xmpp-vtn run`` pointed at the client port is told so, not to declare the component; an
undeclared component on the real component port still gets the declaration hint."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_against(tmp_path: Path, jid: str, secret: str, port: int) -> subprocess.CompletedProcess:
    config = tmp_path / "vtn.toml"
    config.write_text(f'vtn_id = "V"\nstore = ":memory:"\n[component]\njid = "{jid}"\nsecret = "{secret}"\nport = {port}\n')
    return subprocess.run([sys.executable, "-m", "xmpp_vtn", "run", "--config", str(config), "--connect-timeout", "5"],
                          capture_output=True, text=True, timeout=60, cwd=str(REPO))


@pytest.mark.parametrize("server_name", ["prosody", "prosody_tls"])
@pytest.mark.parametrize("served", [False, True], ids=["component-domain", "client-domain"])
def test_run_at_the_client_port_says_it_is_the_client_port(request, tmp_path, server_name, served):
    server = request.getfixturevalue(server_name)
    jid = server.domain if served else server.component       # a served host gets stream features instead
    result = run_against(tmp_path, jid, server.secret, server.c2s_port)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert f"127.0.0.1:{server.c2s_port} is the server's client (c2s) port" in last, result.stderr
    assert "component_ports" in last and "declare it there" not in last


def test_an_undeclared_component_at_the_component_port_is_told_to_declare_it(prosody, tmp_path):
    result = run_against(tmp_path, "nope.localhost", prosody.secret, prosody.component_port)
    assert result.returncode == 1
    assert "declare it there (Prosody: Component" in result.stderr.splitlines()[-1]
