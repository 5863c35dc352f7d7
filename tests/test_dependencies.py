"""The suite runs against the dependency versions setup.cfg declares (their lower ends in CI)."""
from __future__ import annotations

import configparser
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def declared(name: str) -> Requirement:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in config["options"]["install_requires"].splitlines()]
    return next(Requirement(line) for line in lines if line and not line.startswith("#")
                and Requirement(line).name == name)


def test_the_installed_slixmpp_is_in_the_declared_range_and_at_its_lower_end():
    requirement = declared("slixmpp")
    installed = version("slixmpp")
    assert requirement.specifier.contains(installed), (installed, str(requirement))
    lower = min(spec.version for spec in requirement.specifier if spec.operator == ">=")
    assert installed.startswith(lower), f"the suite runs on {installed}; the declared lower end is {lower}"
