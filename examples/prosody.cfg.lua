-- Prosody 0.12 configuration for an xmpp-vtn deployment (docs/servers.md explains each part).
--
-- VENs are accounts on xmpp.example.com and log in over TLS; the VTN connects on loopback as
-- the external component vtn.example.com. Replace the example domains and every CHANGE-ME.
-- Keep this file readable by root and the prosody user only: it holds the component secret.
-- Check it with:  prosodyctl --config /etc/prosody/prosody.cfg.lua check

---------- Global settings ----------

admins = { }
pidfile = "/run/prosody/prosody.pid"
data_path = "/var/lib/prosody"
log = {
    info = "/var/log/prosody/prosody.log";
    error = "/var/log/prosody/prosody.err";
}

-- Only what VENs and the VTN need. No in-band registration ("register"): the operator creates
-- one account per VEN. No s2s: VENs and the VTN are on this server, nothing federates.
modules_enabled = {
    -- No "posix": Prosody loads it itself when it daemonizes; listed, it prints a Lua traceback as root.
    "roster"; "saslauth"; "tls"; "disco"; "ping"; "limits"; "admin_shell";
}
modules_disabled = { "s2s"; "offline" }

-- Where VENs connect: STARTTLS on 5222, TLS from the first byte on 5223 (XEP-0368).
interfaces = { "*" }
c2s_ports = { 5222 }
c2s_direct_tls_ports = { 5223 }

-- Where the VTN connects. XEP-0114 is not encrypted: keep it on loopback (the default), or on a
-- private network when the VTN runs on another machine.
component_interfaces = { "127.0.0.1" }
component_ports = { 5347 }

-- Without this every stanza larger than 8 KiB stalls about 45 ms (Nagle's algorithm meeting
-- delayed acknowledgements). OpenADR events and reports are often larger.
network_settings = { nagle = false }

-- TLS for VEN accounts. Certificates for xmpp.example.com go in /etc/prosody/certs
-- (xmpp.example.com.crt and .key, or: prosodyctl --root cert import /etc/letsencrypt/live).
certificates = "certs"
c2s_require_encryption = true           -- no login before TLS
allow_unencrypted_plain_auth = false    -- never a password in the clear

-- Passwords stored as SCRAM hashes; VENs log in with SCRAM-SHA-1 (or PLAIN, inside TLS).
authentication = "internal_hashed"
-- Every VEN does SCRAM? Then refuse PLAIN as well:
-- disable_sasl_mechanisms = { "PLAIN"; "DIGEST-MD5" }

-- Rate limits. mod_limits throttles each client connection (10 kb/s when enabled without this
-- table: a 60 KB report takes seconds). The component connection is not throttled.
limits = {
    c2s = { rate = "512kb/s"; burst = "2s" };
}
-- The largest stanza a VEN may send (its requests and reports), and the largest the VTN may
-- send (a push carries all the VEN's pending and active events). Prosody closes the stream of
-- whoever sends more. Defaults: 256 KiB and 512 KiB.
-- 256 KiB holds the largest message a VEN sends within the VTN's quotas (an oadrRegisterReport
-- of one report of 256 readings, 168 KB) with room to spare, and keeps stanzas built to make the
-- VTN's XML parser work (up to 65,536 elements, 30-55 ms of its loop each) off the VTN's shared
-- component stream; with the rate above, it is the server's share of the defence against them
-- (docs/servers.md, "Stanza size and rate"). Do not raise it without a reason.
c2s_stanza_size_limit = 256 * 1024
component_stanza_size_limit = 1024 * 1024

---------- The VENs' domain ----------

VirtualHost "xmpp.example.com"
    allow_registration = false

---------- The VTN ----------

Component "vtn.example.com"
    component_secret = "CHANGE-ME: a long random string, the same as the VTN's secret"
