"""simpleHTTP over TLS with client certificates: the fingerprint is the identity that binds a venID,
and OpenLEADR's signed messages are verified against the certificate. Certificates are generated
per test run with ``cryptography`` (which OpenLEADR depends on)."""
from __future__ import annotations

import ssl
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from openleadr.messaging import create_message
from openleadr.utils import certificate_fingerprint

from xmpp_vtn import codec
from xmpp_vtn.services import codes
from http_scene import Seen, http_vtn, openleadr_ven, running
from xmpp_scene import run


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(directory: Path, name: str, issuer: tuple | None = None, server: bool = False) -> tuple:
    """A key and certificate (signed by ``issuer``'s, else a CA of its own) written as name.key/.crt."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    issuer_key, issuer_cert = issuer or (key, None)
    builder = (x509.CertificateBuilder().subject_name(_name(name))
               .issuer_name(issuer_cert.subject if issuer_cert else _name(name))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    (directory / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, the VTN's server certificate, two VEN certificates from the CA, one from another CA."""
    directory = tmp_path_factory.mktemp("pki")
    ca = _issue(directory, "ca")
    _issue(directory, "vtn", ca, server=True)
    _issue(directory, "ven1", ca)
    _issue(directory, "ven2", ca)
    _issue(directory, "rogue", _issue(directory, "rogue-ca"))
    return directory


def fingerprint(pki: Path, name: str) -> str:
    return certificate_fingerprint((pki / f"{name}.crt").read_text())


def tls_vtn(prosody, pki: Path, handlers: dict, **options):
    return http_vtn(prosody, handlers, http_cert=str(pki / "vtn.crt"), http_key=str(pki / "vtn.key"),
                    http_ca_file=str(pki / "ca.crt"), **options)


def tls_ven(vtn, pki: Path, name: str, **options):
    return openleadr_ven(vtn, ven_id=options.pop("ven_id", name), cert=str(pki / f"{name}.crt"),
                         key=str(pki / f"{name}.key"), ca_file=str(pki / "ca.crt"), **options)


def known_fingerprints(pki: Path):
    """OpenLEADR's way: the handler checks ``payload['fingerprint']`` against what it was told."""
    expected = {"ven1": fingerprint(pki, "ven1"), "ven2": fingerprint(pki, "ven2")}
    seen = []

    def on_create_party_registration(payload, sender):
        seen.append((payload["ven_id"], payload.get("fingerprint"), sender))
        if expected.get(payload["ven_id"]) != payload.get("fingerprint"):
            return None
        return payload["ven_id"], f"reg-{payload['ven_id']}"
    return on_create_party_registration, seen


def client_context(pki: Path, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / f"{name}.crt"), str(pki / f"{name}.key"))
    return context


def test_certificate_fingerprint_binds_the_ven_id_and_signed_messages_verify(prosody, pki):
    register, seen = known_fingerprints(pki)

    async def scenario():
        answers = Seen()
        vtn = tls_vtn(prosody, pki, {"on_create_party_registration": register})
        await vtn.run()
        try:
            ven = tls_ven(vtn, pki, "ven1")                  # signs every message with its certificate
            async with running(ven):
                start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=10)
                event_id = vtn.add_event(ven.ven_id, "SIMPLE", "level", [
                    {"dtstart": start, "duration": timedelta(minutes=5), "signal_payload": 1.0}], callback=answers)
                calls = await answers.wait(1)
                # Another certificate of the same CA speaking for ven1 is not ven1.
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                        ssl=client_context(pki, "ven2"))) as session:
                    poll = create_message("oadrPoll", cert=(pki / "ven2.crt").read_bytes(),
                                          key=(pki / "ven2.key").read_bytes(), ven_id="ven1")
                    async with session.post(f"{vtn.http_url}/OadrPoll", data=poll,
                                            headers={"Content-Type": "application/xml"}) as response:
                        impostor = response.status, await response.read()
                return event_id, calls, impostor, vtn.vens()
        finally:
            await vtn.stop()

    event_id, calls, impostor, [record] = run(scenario())
    assert seen == [("ven1", fingerprint(pki, "ven1"), "x509:" + fingerprint(pki, "ven1"))]
    assert record.bare_jid == "x509:" + fingerprint(pki, "ven1") and record.ven_id == "ven1"
    assert calls == [("ven1", event_id, "optIn")]
    status, body = impostor
    assert status == 200 and codec.parse(body)[1]["response"]["response_code"] == codes.NOT_REGISTERED_OR_AUTHORIZED


def test_wrong_certificate_tampered_and_unsigned_messages_are_refused(prosody, pki):
    register, seen = known_fingerprints(pki)

    async def scenario():
        vtn = tls_vtn(prosody, pki, {"on_create_party_registration": register})
        await vtn.run()
        try:
            results = {}
            # A certificate from another CA: the TLS handshake itself fails.
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                    ssl=client_context(pki, "rogue"))) as session:
                try:
                    async with session.post(f"{vtn.http_url}/EiRegisterParty", data=b"<x/>",
                                            headers={"Content-Type": "application/xml"}) as response:
                        results["rogue"] = response.status
                except aiohttp.ClientError as error:
                    results["rogue"] = type(error).__name__
            # No client certificate at all: refused in the handshake too.
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                    ssl=ssl.create_default_context(cafile=str(pki / "ca.crt")))) as session:
                try:
                    async with session.post(f"{vtn.http_url}/EiRegisterParty", data=b"<x/>",
                                            headers={"Content-Type": "application/xml"}) as response:
                        results["anonymous"] = response.status
                except aiohttp.ClientError as error:
                    results["anonymous"] = type(error).__name__
            # A VEN whose fingerprint the application does not know: registration refused (463).
            stranger = tls_ven(vtn, pki, "ven2", ven_id="ven9")
            async with running(stranger):
                results["unknown fingerprint"] = stranger.registration_id
            # ven1's certificate, but a signed message changed after signing, or not signed at all.
            cert, key = (pki / "ven1.crt").read_bytes(), (pki / "ven1.key").read_bytes()
            query = create_message("oadrQueryRegistration", cert=cert, key=key, request_id="r1")
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                    ssl=client_context(pki, "ven1"))) as session:
                async def post(body: str) -> tuple[int, str]:
                    async with session.post(f"{vtn.http_url}/EiRegisterParty", data=body,
                                            headers={"Content-Type": "application/xml"}) as response:
                        return response.status, await response.text()
                results["tampered"] = await post(query.replace("r1", "r2"))
                results["unsigned"] = await post(create_message("oadrQueryRegistration", request_id="r3"))
                results["signed"] = (await post(query))[0]
                results["replayed"] = await post(query)
            return results, vtn.vens()
        finally:
            await vtn.stop()

    results, vens = run(scenario())
    # The server's TLS alert reaches aiohttp as an OS error on the connection (ven1's succeeds below).
    handshake_refused = ("ClientOSError", "ClientConnectorSSLError", "ServerDisconnectedError")
    assert results["rogue"] in handshake_refused and results["anonymous"] in handshake_refused
    assert results["unknown fingerprint"] is None
    assert results["tampered"][0] == 403 and "does not verify" in results["tampered"][1]
    assert results["unsigned"][0] == 403 and "not signed" in results["unsigned"][1]
    assert results["signed"] == 200
    assert results["replayed"][0] == 403 and "replayed" in results["replayed"][1]
    assert vens == []


def test_signature_verification_can_be_turned_off(prosody, pki):
    register, _ = known_fingerprints(pki)

    async def scenario():
        vtn = tls_vtn(prosody, pki, {"on_create_party_registration": register}, verify_message_signatures=False)
        await vtn.run()
        try:
            ven = tls_ven(vtn, pki, "ven1", disable_signature=True)
            async with running(ven):
                return ven.registration_id, vtn.vens()
        finally:
            await vtn.stop()

    registration_id, [record] = run(scenario())
    assert registration_id == "reg-ven1" and record.bare_jid == "x509:" + fingerprint(pki, "ven1")
