"""What the docs promise a new user: the hand-written payload validates, the example Prosody
configuration does not load posix, and the guides they point to exist."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_hand_written_payload_example_validates_and_names_its_namespaces():
    example = REPO / "examples" / "payloads" / "oadrDistributeEvent.xml"
    result = subprocess.run([sys.executable, "-m", "xmpp_vtn", "validate", str(example)], capture_output=True,
                            text=True, timeout=60, cwd=str(REPO))
    assert result.returncode == 0 and "valid (oadrDistributeEvent)" in result.stdout, result.stdout + result.stderr
    text = example.read_text()
    for prefix in ("oadr", "ei", "pyld", "emix", "xcal", "strm", "power", "scale", "ds"):
        assert re.search(rf"^\s+{prefix}\s+\S+", text, re.M), prefix


def test_the_example_prosody_config_does_not_load_posix():
    config = (REPO / "examples" / "prosody.cfg.lua").read_text()
    enabled = re.search(r"modules_enabled = \{(.*?)\}", config, re.S).group(1)
    assert '"posix"' not in "\n".join(line for line in enabled.splitlines() if not line.strip().startswith("--"))


def test_readme_starts_with_the_two_commands_and_the_user_path_and_its_links_resolve():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0].startswith("make demo") and first_block[1].startswith("make test")
    assert readme.index("## Your first hour") < readme.index("## The codec")
    for document in ("README.md", "docs/README.md", "docs/operations.md", "docs/simulated-vens.md",
                     "docs/getting-started.md", "docs/servers.md"):
        text = (REPO / document).read_text()
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (REPO / document).parent.joinpath(target).exists(), f"{document}: {target}"


def test_simulated_ven_docs_cover_its_constructor_and_methods():
    from dataclasses import fields
    from xmpp_vtn.testing.ven import SimulatedVEN
    text = (REPO / "docs" / "simulated-vens.md").read_text()
    documented = {"jid", "password", "vtn_jid", "host", "port", "security", "ven_id", "registration_id", "ven_name",
                  "request_timeout", "opt", "reregister_on_request", "announce_presence", "wants_vtn_reports",
                  "report_on_schedule", "answers_ping", "answers_disco"}
    internal = {"received", "events", "answered", "offered_reports", "report_requests"}
    assert {field.name for field in fields(SimulatedVEN)} == documented | internal
    for name in documented:
        assert f"`{name}`" in text, name
    for method in ("offer_report", "register_reports", "send_report", "stop", "start", "next_push"):
        assert f"`{method}(" in text, method
    assert "local part" in text
