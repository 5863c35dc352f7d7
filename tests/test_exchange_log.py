"""The operator's log: one info line per OpenADR exchange (direction, type, venID, peer, outcome),
payloads only at debug level, and never the component secret."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from xmpp_scene import run, scene


def exchange(prosody, caplog, level: int) -> tuple[list[str], str]:
    """Register one VEN, push it an event and let it answer; the exchange log's lines."""
    caplog.set_level(level, logger="xmpp_vtn.exchange")

    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):
            start = datetime.now(timezone.utc) + timedelta(hours=1)
            vtn.add_event(ven.ven_id, "SIMPLE", "level",
                          [{"dtstart": start, "duration": timedelta(hours=1), "signal_payload": 1.0}])
            await ven.next_push("oadrDistributeEvent")
            await vtn.courier.idle()
            return ven.ven_id
    ven_id = run(scenario())
    return [record.getMessage() for record in caplog.records if record.name == "xmpp_vtn.exchange"], ven_id


def test_each_exchange_is_one_info_line_with_ven_type_direction_and_outcome(prosody, caplog):
    lines, ven_id = exchange(prosody, caplog, logging.INFO)
    assert any(line.startswith("in  oadrCreatePartyRegistration") and f"venID={ven_id}" in line
               and line.endswith("-> oadrCreatedPartyRegistration 200") for line in lines), lines
    assert any(line.startswith("out oadrDistributeEvent") and f"venID={ven_id}" in line
               and line.endswith("-> acknowledged") for line in lines), lines
    assert any(line.startswith("in  oadrCreatedEvent") and line.endswith("-> oadrResponse 200") for line in lines)
    assert not any("payload" in line for line in lines)


def test_payloads_appear_at_debug_and_the_secret_never(prosody, caplog):
    lines, _ = exchange(prosody, caplog, logging.DEBUG)
    assert any(line.startswith("out payload") and "oadrDistributeEvent" in line for line in lines)
    assert any(line.startswith("in  payload") and "oadrCreatedEvent" in line for line in lines)
    everything = "\n".join(record.getMessage() for record in caplog.records)
    assert prosody.secret not in everything
