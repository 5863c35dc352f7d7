"""Test and simulation support: the simulated VEN and ven-sim, a manual clock, loopback clients, and
private Prosody, ejabberd and PostgreSQL servers. Nothing in the product imports this package
(except the ven-sim command)."""
