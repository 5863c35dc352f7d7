"""The XSD bundle: verification, the clear errors, installing from a wheel, and a built wheel
of this project working in a fresh virtual environment."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from xmpp_vtn import bundle
from xmpp_vtn.ops import cli
from xmpp_vtn.errors import SchemaBundleError

REPO = Path(__file__).resolve().parent.parent


INSTALLED = bundle.bundle_dir()


@pytest.fixture
def empty_bundle(tmp_path, monkeypatch):
    """A bundle directory holding only the manifest, selected through $XMPP_VTN_SCHEMA_DIR."""
    shutil.copy(INSTALLED / "manifest.json", tmp_path / "manifest.json")
    monkeypatch.setenv("XMPP_VTN_SCHEMA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def genuine_wheel(tmp_path_factory) -> Path:
    """The pinned openleadr wheel, downloaded once from the package registry."""
    target = tmp_path_factory.mktemp("wheel")
    manifest = bundle.load_manifest()
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
                    "-d", str(target), f"{manifest['distribution']}=={manifest['version']}"], check=True)
    return target / manifest["wheel"]


def test_installed_bundle_verifies():
    entry = bundle.verify()
    assert entry.name == "oadr_20b.xsd"
    assert len(bundle.load_manifest()["files"]) == 17  # 16 schemas and their licences


def test_missing_files_say_what_to_run(empty_bundle):
    with pytest.raises(SchemaBundleError, match=r"not installed .*17 of 17 missing.*xmpp-vtn schemas install"):
        bundle.verify()


def test_altered_file_is_detected(empty_bundle):
    for name in bundle.load_manifest()["files"]:
        shutil.copy(INSTALLED / name, empty_bundle / name)
    assert bundle.verify() == empty_bundle / "oadr_20b.xsd"
    with open(empty_bundle / "oadr_ei_20b.xsd", "a") as handle:
        handle.write("<!-- changed -->")
    with pytest.raises(SchemaBundleError, match=r"do not match the manifest \(oadr_ei_20b.xsd\)"):
        bundle.verify()


def test_a_wheel_with_another_hash_is_refused_and_nothing_written(empty_bundle, tmp_path_factory):
    fake = tmp_path_factory.mktemp("fake") / bundle.load_manifest()["wheel"]
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("openleadr/schema/oadr_20b.xsd", "<schema/>")
    with pytest.raises(SchemaBundleError, match="refusing to install it"):
        bundle.install(wheel=fake)
    assert sorted(p.name for p in empty_bundle.iterdir()) == ["manifest.json"]


def test_missing_wheel_file(empty_bundle):
    with pytest.raises(SchemaBundleError, match="no such wheel file"):
        bundle.install(wheel=empty_bundle / "nope.whl")


def test_offline_install_from_a_wheel_file(empty_bundle, genuine_wheel, capsys):
    assert cli.main(["schemas", "install", "--wheel", str(genuine_wheel)]) == 0
    assert "installed the OpenADR 2.0b schema set" in capsys.readouterr().out
    assert bundle.verify() == empty_bundle / "oadr_20b.xsd"
    assert cli.main(["schemas", "verify"]) == 0


def test_cli_reports_a_missing_bundle(empty_bundle, capsys):
    assert cli.main(["schemas", "verify"]) == 1
    assert "xmpp-vtn schemas install" in capsys.readouterr().err


@pytest.mark.slow
def test_built_wheel_carries_the_schemas_into_a_fresh_venv(tmp_path):
    """Build this project's wheel and use it from a new virtual environment."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(REPO)], check=True, cwd=tmp_path)
    (wheel,) = dist.glob("xmpp_vtn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "xmpp_vtn/schemas/oadr_20b.xsd" in names and "xmpp_vtn/schemas/manifest.json" in names
    assert not any(name.startswith("schemas/") for name in names)
    # Every module of the source tree ships (a subpackage missing from setup.cfg would not).
    modules = {str(path.relative_to(REPO)) for path in (REPO / "xmpp_vtn").rglob("*.py")}
    assert modules <= set(names), modules - set(names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with zipfile.ZipFile(wheel) as archive:  # what pip install does for a pure-Python wheel
        archive.extractall(site)
    # The fresh venv borrows lxml and friends from ours, after its own site-packages.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    env.pop("XMPP_VTN_SCHEMA_DIR", None)
    check = ("import xmpp_vtn, xmpp_vtn.bundle as b, xmpp_vtn.codec as c; "
             "print(b.verify()); print(c.parse(c.serialize('oadrPoll', {'ven_id': '007'})))")
    result = subprocess.run([str(python), "-c", check], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(Path(site) / "xmpp_vtn" / "schemas" / "oadr_20b.xsd")
    assert lines[1] == "('oadrPoll', {'ven_id': '007'})"
    assert json.loads((Path(site) / "xmpp_vtn" / "schemas" / "manifest.json").read_text())["version"] == "0.5.36"
