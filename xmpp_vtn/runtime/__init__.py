"""What carries bytes and time: the XMPP component, the outbox and its delivery loop, the cluster
leases, the scheduler and the exchange log."""
