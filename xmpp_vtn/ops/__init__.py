"""Operator tools: the command line, the TOML config, status, validate and the XEP-0050 commands."""
