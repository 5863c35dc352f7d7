"""What the VTN's component costs to read what VENs send, with the stanza gate and without it.

Two figures, each beside its baseline measured in the same run, in the same process:

- **one exchange read**: an oadrCreatedEvent request and the acknowledgement of a push, through
  ``OadrComponent`` as they come off the stream (the OpenADR work behind ``on_request`` stubbed).
  With the gate, both are taken from their bytes; the baseline switches the gate off, so both go
  through slixmpp's parser, the parsed fast path and ``element_bytes`` as before the gate.
- **one huge stanza refused**: 60,000 empty elements (240 KB) from an account with no
  registration. With the gate it is counted and refused unread; the baseline parses it first.

CPU time of this process (``time.process_time``), no server and no network: the component's own
reading, nothing else; the collector tuned as ``xmpp-vtn run`` tunes it (``--untuned-gc`` leaves
it alone). Run::

    python bench/inbound.py [--exchanges 5000] [--huge 20]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xmpp_vtn import codec  # noqa: E402
from xmpp_vtn.runtime.collector import tune_for_serving  # noqa: E402
from xmpp_vtn.runtime.component import OadrComponent  # noqa: E402

HEADER = (b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' "
          b"id='bench' from='vtn.localhost'>")


def created_event() -> str:
    """An oadrCreatedEvent as the codec writes it (what a VEN built on it sends)."""
    document = codec.serialize("oadrCreatedEvent", {
        "response": {"response_code": 200, "response_description": "OK", "request_id": "r"},
        "event_responses": [{"response_code": 200, "response_description": "OK", "request_id": "req-2",
                             "event_id": "ev-00042", "modification_number": 3, "opt_type": "optIn"}],
        "ven_id": "ven-0001"}).decode()
    return document[document.index("?>") + 2:].strip()


class _Refusing:
    """The request gate of a VTN that knows no registration: stanzas over 400 elements are refused."""

    def admit(self, sender: str, elements: int):
        return None

    def release(self, sender: str) -> None:
        pass

    def accept_size(self, sender: str, elements: int) -> bool:
        return elements <= 400

    def oversized(self, sender: str, size: int) -> None:
        pass

    def hold_refusal(self, sender: str) -> float:
        return 0.0

    def refusal_answered(self, sender: str) -> None:
        pass


async def _component(gated: bool) -> tuple[OadrComponent, list[int]]:
    served = [0]

    async def on_request(sender: str, addressed: str, data: bytes) -> None:
        served[0] += 1

    component = OadrComponent("vtn.localhost", "unused", "127.0.0.1", 5347, on_request)
    component.gate = _Refusing()
    stream = component.xmpp
    stream.start_stream_handler = lambda root: None      # no handshake: nothing is connected
    if not gated:
        stream.gate = None
    stream.init_parser()
    stream.data_received(HEADER)
    return component, served


async def exchanges(gated: bool, count: int) -> float:
    """CPU seconds per exchange read (request and acknowledgement)."""
    component, served = await _component(gated)
    loop = asyncio.get_running_loop()
    body = created_event()
    reads = []
    for k in range(count):
        request = f"<iq type='set' id='s{k}' from='ven{k}@localhost/oadr' to='vtn.localhost'>{body}</iq>"
        ack = f"<iq type='result' id='p{k}' from='ven{k}@localhost/oadr' to='vtn.localhost'/>"
        reads.append((request + ack).encode())
        component._pending[f"p{k}"] = (f"ven{k}@localhost/oadr", loop.create_future())
    began = time.process_time()
    for data in reads:
        component.xmpp.data_received(data)
    while component._requests:
        await asyncio.sleep(0)
    spent = time.process_time() - began
    assert served[0] == count                                            # every request served
    assert all(answer.done() for _, answer in component._pending.values())  # every push settled
    return spent / count


async def huge(gated: bool, count: int) -> float:
    """CPU seconds per huge stanza read and refused."""
    component, _ = await _component(gated)
    stanza = (b"<iq type='set' id='h' from='stranger@localhost/x' to='vtn.localhost'>"
              b"<oadrPayload xmlns='http://openadr.org/oadr-2.0b/2012/07'>" + b"<x/>" * 60_000
              + b"</oadrPayload></iq>")
    began = time.process_time()
    for _ in range(count):
        for start in range(0, len(stanza), 65536):          # as the socket hands it over
            component.xmpp.data_received(stanza[start:start + 65536])
    spent = time.process_time() - began
    if gated:
        assert component.xmpp.gate.refused == count
    return spent / count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=5000)
    parser.add_argument("--huge", type=int, default=20)
    parser.add_argument("--untuned-gc", action="store_true",
                        help="leave the garbage collector as it is (xmpp-vtn run tunes it; see runtime/collector.py)")
    args = parser.parse_args()
    if not args.untuned_gc:
        tune_for_serving()
    print(f"{'what':<42} {'with the gate':>14} {'without (baseline)':>19} {'ratio':>6}")
    for name, measure, count, unit, scale in (
            ("one exchange read (request + ack)", exchanges, args.exchanges, "us", 1e6),
            ("one huge stanza refused (60,000 elements)", huge, args.huge, "ms", 1e3)):
        baseline = await measure(False, count)
        gated = await measure(True, count)
        print(f"{name:<42} {gated * scale:>11.1f} {unit} {baseline * scale:>16.1f} {unit} {gated / baseline:>6.2f}")
    print("ratio = CPU with the gate / CPU without it, same stanzas, same process (lower is better)")


if __name__ == "__main__":
    asyncio.run(main())
