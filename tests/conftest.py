"""Shared fixtures. The XSD bundle must be installed (the README's test command does it)."""
from __future__ import annotations

import os
import sys

# The catalogue of payloads lives beside the tests.
sys.path.insert(0, os.path.dirname(__file__))
