"""The control API over HTTP against a VTN on a real Prosody, with real simulated VENs: every route,
the rules of who may come in, and bad input refused with the field named and nothing changed."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import aiohttp
import pytest

from xmpp_vtn.control.api import ROUTES
from control_scene import AUTH, OTHER_TOKEN, TOKEN, control_scene, hour_event, wait_for_answer
from xmpp_scene import run

OPERATOR_LINES = "xmpp_vtn.exchange"


def operator_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == OPERATOR_LINES and record.getMessage().startswith("op  ")]


# -- who may come in -------------------------------------------------------------------------------

def test_every_route_but_healthz_refuses_missing_wrong_and_malformed_credentials(prosody):
    paths = sorted({(method, path.replace("{event_id}", "some-event")) for method, path, _ in ROUTES}
                   | {("GET", "/metrics"), ("GET", "/api/stream")})

    async def scenario():
        async with control_scene(prosody, register=False, authorized=False) as (vtn, _, client):
            answers = {}
            for kind, headers in enumerate(({}, {"Authorization": f"Bearer {OTHER_TOKEN}"},
                                            {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"})):
                for method, path in paths:
                    async with client.request(method, path, headers=headers, json={}) as response:
                        answers[(kind, method, path)] = (
                            response.status, await response.json(), response.headers.get("WWW-Authenticate"))
            async with client.get("/", allow_redirects=False) as page:
                redirect = page.status, page.headers["Location"]
            async with client.get("/healthz") as health:
                healthy = health.status, await health.json()
            return answers, redirect, healthy, vtn.vtn_id

    answers, redirect, (health_status, health), vtn_id = run(scenario())
    assert len(answers) == 4 * len(paths)
    for key, (status, body, challenge) in answers.items():
        assert status == 401, key
        assert body["field"] == "Authorization" and body["error"], key
        assert challenge == 'Bearer realm="xmpp-vtn"', key
    assert redirect == (303, "/login")                      # a person is sent to the login form
    assert health_status == 200
    assert health == {"ok": True, "xmpp_connected": True, "store_reachable": True, "vtn_id": vtn_id}


def test_a_wrong_token_is_refused_even_beside_a_valid_session_and_the_session_ends_at_logout(prosody):
    async def scenario():
        async with control_scene(prosody, register=False, authorized=False) as (vtn, _, client):
            async with client.post("/login", data={"token": "not-a-token"}) as refused:
                refused_login = refused.status, "not one this VTN knows" in await refused.text()
            async with client.post("/login", data={"token": TOKEN}, allow_redirects=False) as login:
                cookie = login.cookies["xmpp_vtn_session"]
                login_answer = login.status, login.headers["Location"], dict(cookie)
            async with client.get("/api/vens") as by_session:
                session_status = by_session.status
            async with client.get("/api/vens", headers={"Authorization": f"Bearer {OTHER_TOKEN}"}) as wrong:
                wrong_status = wrong.status
            async with client.post("/api/events", json=hour_event(["x"]),
                                   headers={"Origin": "http://evil.example"}) as cross_site:
                cross = cross_site.status, await cross_site.json()
            async with client.get("/") as page:
                page_text = await page.text()
                csp = page.headers["Content-Security-Policy"]
            async with client.post("/logout", allow_redirects=False) as logout:
                logout_status = logout.status
            client.cookie_jar.update_cookies({"xmpp_vtn_session": cookie.value})   # replaying the old cookie
            async with client.get("/api/vens") as after:
                after_status = after.status
            return refused_login, login_answer, session_status, wrong_status, cross, page_text, csp, \
                logout_status, after_status, vtn.events()

    refused_login, (login_status, location, cookie), session_status, wrong_status, (cross_status, cross), page, \
        csp, logout_status, after_status, events = run(scenario())
    assert refused_login == (401, True)
    assert (login_status, location) == (303, "/")
    assert cookie["httponly"] is True and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert TOKEN not in cookie.get("value", "")
    assert session_status == 200
    assert wrong_status == 401                              # judged by the token it brought
    assert cross_status == 403 and cross["field"] == "Origin" and events == []
    assert 'id="events"' in page and "alice" in page        # the dashboard, showing who is logged in
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert logout_status == 303 and after_status == 401


# -- reading ---------------------------------------------------------------------------------------

def test_vens_shows_registration_transport_liveness_and_owed_pushes(prosody):
    async def scenario():
        async with control_scene(prosody, vens=2) as (vtn, vens, client):
            await vtn.courier.idle()
            async with client.get("/api/vens") as response:
                return response.status, await response.json(), vens

    status, body, vens = run(scenario())
    assert status == 200
    shown = {ven["ven_id"]: ven for ven in body["vens"]}
    assert sorted(shown) == sorted(ven.ven_id for ven in vens)
    for ven in vens:
        entry = shown[ven.ven_id]
        assert entry["registration_id"] == ven.registration_id
        assert entry["jid"] == ven.full_jid.split("/")[0] and entry["transport_address"] == ven.full_jid
        assert entry["transport"] == "xmpp"
        assert entry["online"] is True and entry["state"] == "online" and entry["last_seen"].endswith("Z")
        assert entry["owed_pushes"] == 0                    # the VTN's oadrRegisterReport was acknowledged


def test_owed_pushes_count_what_an_offline_ven_is_owed(prosody):
    async def scenario():
        async with control_scene(prosody) as (vtn, [ven], client):
            await vtn.courier.idle()
            await ven.stop()
            owed = await vtn.request_reregistration(ven.ven_id)
            async with client.get("/api/vens") as response:
                return owed, await response.json(), ven.ven_id

    acknowledged, body, ven_id = run(scenario())
    [entry] = body["vens"]
    assert acknowledged is False and entry["ven_id"] == ven_id and entry["owed_pushes"] == 1


# -- creating, modifying, cancelling --------------------------------------------------------------

def test_an_event_created_over_the_api_is_pushed_answered_and_shown_per_ven(prosody, caplog):
    caplog.set_level(logging.INFO, logger=OPERATOR_LINES)

    async def scenario():
        async with control_scene(prosody, vens=2) as (vtn, vens, client):
            vens[1].opt = "optOut"
            body = hour_event([ven.ven_id for ven in vens], payload=2.5, event_id="shed-1", priority=1,
                              market_context="http://grid.example/dr", ramp_up_period="PT10M")
            async with client.post("/api/events", json=body) as created:
                answer = created.status, await created.json(), created.headers["Location"]
            pushes = await asyncio.gather(*(ven.next_push("oadrDistributeEvent") for ven in vens))
            await asyncio.gather(*(wait_for_answer(vtn, "shed-1", ven.ven_id) for ven in vens))
            async with client.get("/api/events/shed-1") as one:
                detail = await one.json()
            async with client.get("/api/events") as listed:
                summary = await listed.json()
            async with client.get(f"/api/events?ven_id={vens[0].ven_id}") as filtered:
                for_first = await filtered.json()
            return answer, pushes, detail, summary, for_first, vens

    (status, body, location), pushes, detail, summary, for_first, vens = run(scenario())
    assert (status, body, location) == (201, {"event_id": "shed-1"}, "/api/events/shed-1")
    for push in pushes:
        [event] = push.payload["events"]
        assert event["event_descriptor"]["event_id"] == "shed-1"
        assert event["event_descriptor"]["priority"] == 1
        assert event["active_period"]["duration"] == timedelta(hours=1)
        assert event["active_period"]["ramp_up_period"] == timedelta(minutes=10)
        assert event["event_signals"][0]["intervals"][0]["signal_payload"] == 2.5
    assert detail["status"] == "far" and detail["start"] == "2030-01-31T14:00:00Z" and detail["duration"] == "PT1H"
    assert detail["market_context"] == "http://grid.example/dr" and detail["modification_number"] == 0
    deliveries = {item["ven_id"]: item for item in detail["deliveries"]}
    assert deliveries[vens[0].ven_id]["opt_type"] == "optIn" and deliveries[vens[1].ven_id]["opt_type"] == "optOut"
    assert all(item["up_to_date"] and item["delivered_modification"] == 0 for item in deliveries.values())
    [listed] = summary["events"]
    assert "deliveries" not in listed
    assert listed["summary"] == {"vens": 2, "up_to_date": 2, "opt_in": 1, "opt_out": 1, "no_answer": 0}
    assert [event["event_id"] for event in for_first["events"]] == ["shed-1"]
    assert "op  create-event shed-1 by=alice -> 201 created" in operator_lines(caplog)


BAD_BODIES = [
    # (body, field, status, words in the error)
    ({"signal_type": "level", "intervals": [{"dtstart": "2030-01-31T14:00:00Z", "duration": "PT1H",
                                              "signal_payload": 1}]}, "signal_name", 400, "missing"),
    ("VEN", "signal_type", 400, "signal_type"),
    ("VEN:signal_name", "signal_name", 400, "not an OpenADR 2.0b signal name"),
    ("VEN:duration", "intervals[0].duration", 400, "ISO 8601 duration"),
    ("VEN:naive", "intervals[0].dtstart", 400, "no timezone"),
    ("VEN:payload", "intervals[0].signal_payload", 400, "number"),
    ("VEN:gap", "intervals[1]", 400, "contiguous"),
    ("VEN:unknown", "colour", 400, "unknown field"),
    ("VEN:typo", "venids", 400, "did you mean ven_ids"),
    ({"ven_ids": ["nobody"], "signal_name": "SIMPLE", "signal_type": "level",
      "intervals": [{"dtstart": "2030-01-31T14:00:00Z", "duration": "PT1H", "signal_payload": 1}]},
     "ven_ids", 400, "not registered"),
    ("TARGETS", "targets", 400, "on_targets"),
    ("NOBODY", "ven_ids", 400, "give ven_ids"),
    ("VEN:empty-intervals", "intervals", 400, "non-empty"),
    ("VEN:priority", "priority", 400, "whole number"),
    ("[1, 2]", "body", 400, "JSON object"),
    ("{not json", "body", 400, "not valid JSON"),
    ("FORM", "Content-Type", 415, "application/json"),
    ("VEN:duplicate", "event_id", 409, "exists"),
]


def _bad_body(template, ven_id: str):
    good = hour_event([ven_id])
    if not isinstance(template, str):
        return {"json": template}
    if template == "VEN":
        return {"json": {**good, "signal_type": "loudness"}}
    if template == "TARGETS":
        return {"json": hour_event(None, targets=[{"group_id": "north"}])}
    if template == "NOBODY":
        return {"json": hour_event(None)}
    if template == "FORM":
        return {"data": {"signal_name": "SIMPLE"}}
    if template.startswith(("[", "{")):
        return {"data": template, "headers": {**AUTH, "Content-Type": "application/json"}}
    change = template.split(":", 1)[1]
    interval = good["intervals"][0]
    if change == "signal_name":
        good["signal_name"] = "LOUD"
    elif change == "duration":
        interval["duration"] = "1 hour"
    elif change == "naive":
        interval["dtstart"] = "2030-01-31T14:00:00"
    elif change == "payload":
        interval["signal_payload"] = "high"
    elif change == "gap":
        good["intervals"].append({"dtstart": "2030-01-31T16:00:00Z", "duration": "PT1H", "signal_payload": 2})
    elif change == "unknown":
        good["colour"] = "red"
    elif change == "typo":
        good["venids"] = good.pop("ven_ids")
    elif change == "empty-intervals":
        good["intervals"] = []
    elif change == "priority":
        good["priority"] = -1
    elif change == "duplicate":
        good["event_id"] = "taken"
    return {"json": good}


def test_bad_input_gets_a_4xx_naming_the_field_and_changes_nothing(prosody, caplog):
    caplog.set_level(logging.INFO, logger=OPERATOR_LINES)

    async def scenario():
        async with control_scene(prosody) as (vtn, [ven], client):
            async with client.post("/api/events", json=hour_event([ven.ven_id], event_id="taken")) as first:
                assert first.status == 201
            await ven.next_push("oadrDistributeEvent")
            await vtn.courier.idle()
            pushes_before = len(ven.received)
            answers = []
            for template, _, _, _ in BAD_BODIES:
                async with client.post("/api/events", **_bad_body(template, ven.ven_id)) as response:
                    answers.append((response.status, await response.json()))
            async with client.get("/api/events?ven_id=") as empty_filter:
                filter_answer = empty_filter.status, await empty_filter.json()
            async with client.get("/api/nothing-here") as missing:
                missing_answer = missing.status, await missing.json()
            async with client.put("/api/vens", json={}) as wrong_method:
                method_answer = wrong_method.status, await wrong_method.json()
            await vtn.courier.idle()
            return answers, [state.event_id for state in vtn.events()], len(ven.received) - pushes_before, \
                filter_answer, missing_answer, method_answer

    answers, event_ids, new_pushes, filter_answer, missing, wrong_method = run(scenario())
    for (template, field, status, words), (got_status, body) in zip(BAD_BODIES, answers):
        assert (got_status, body["field"]) == (status, field), (template, body)
        assert words in body["error"], (template, body)
    assert event_ids == ["taken"] and new_pushes == 0          # nothing created, nothing pushed
    assert filter_answer == (400, {"error": "must be a venID", "field": "ven_id"})
    assert missing[0] == 404 and missing[1]["field"] == "path"
    assert wrong_method[0] == 405 and wrong_method[1]["field"] == "method"
    refused = [line for line in operator_lines(caplog) if "refused" in line]
    assert len(refused) == len(BAD_BODIES)                      # each attempt is logged, with who made it
    assert all(line.startswith("op  create-event - by=alice -> refused 4") for line in refused)


def test_modify_and_cancel_push_new_modifications_and_refuse_what_cannot_be(prosody, caplog):
    caplog.set_level(logging.INFO, logger=OPERATOR_LINES)

    async def scenario():
        async with control_scene(prosody) as (vtn, [ven], client):
            async with client.post("/api/events", json=hour_event([ven.ven_id], event_id="e1")) as created:
                assert created.status == 201
            await ven.next_push("oadrDistributeEvent")
            answers = {}
            change = {"intervals": [{"dtstart": "2030-01-31T15:00:00Z", "duration": "PT30M", "signal_payload": 3}],
                      "reason": "grid stress", "priority": 2}
            async with client.patch("/api/events/e1", json=change) as modified:
                answers["modify"] = modified.status, await modified.json()
            modified_push = await ven.next_push("oadrDistributeEvent")
            await wait_for_answer(vtn, "e1", ven.ven_id, modification=1)
            for name, body in (("bad", {"intervals": [{"duration": "PT1H", "signal_payload": 1}]}),
                               ("nothing", {"reason": "just because"}),
                               ("unknown", {"event_id": "e2"})):
                async with client.patch("/api/events/e1", json=body) as refused:
                    answers[name] = refused.status, await refused.json()
            async with client.patch("/api/events/nope", json=change) as missing:
                answers["missing"] = missing.status, await missing.json()
            async with client.delete("/api/events/e1") as cancelled:
                answers["cancel"] = cancelled.status, await cancelled.json()
            cancelled_push = await ven.next_push("oadrDistributeEvent")
            async with client.delete("/api/events/e1") as again:
                answers["cancel again"] = again.status, await again.json()
            async with client.patch("/api/events/e1", json=change) as late:
                answers["modify cancelled"] = late.status, await late.json()
            async with client.delete("/api/events/nope") as missing_cancel:
                answers["cancel missing"] = missing_cancel.status, await missing_cancel.json()
            async with client.get("/api/events/e1") as shown:
                answers["shown"] = shown.status, await shown.json()
            async with client.get("/api/events/nope") as unknown:
                answers["get missing"] = unknown.status, await unknown.json()
            return answers, modified_push, cancelled_push

    answers, modified_push, cancelled_push = run(scenario())
    assert answers["modify"] == (200, {"event_id": "e1", "modification_number": 1})
    [event] = modified_push.payload["events"]
    assert event["event_descriptor"]["modification_number"] == 1
    assert event["event_descriptor"]["modification_reason"] == "grid stress"
    assert event["event_descriptor"]["priority"] == 2
    assert event["active_period"]["duration"] == timedelta(minutes=30)
    assert event["event_signals"][0]["intervals"][0]["signal_payload"] == 3.0
    assert answers["bad"][0] == 400 and answers["bad"][1]["field"] == "intervals[0].dtstart"
    assert answers["nothing"][0] == 400 and answers["nothing"][1]["field"] == "body"
    assert answers["unknown"][0] == 400 and answers["unknown"][1]["field"] == "event_id"
    assert answers["missing"][0] == 404 and answers["missing"][1]["field"] == "event_id"
    assert answers["cancel"] == (200, {"event_id": "e1", "status": "cancelled", "modification_number": 2})
    assert cancelled_push.payload["events"][0]["event_descriptor"]["event_status"] == "cancelled"
    assert answers["cancel again"] == (200, {"event_id": "e1", "status": "cancelled", "modification_number": 2})
    assert answers["modify cancelled"][0] == 409 and "cancelled" in answers["modify cancelled"][1]["error"]
    assert answers["cancel missing"][0] == 404
    status, shown = answers["shown"]
    assert status == 200 and shown["status"] == "cancelled" and shown["modification_reason"] == "grid stress"
    assert shown["deliveries"][0]["opt_modification"] == 1 and shown["deliveries"][0]["opt_current"] is False
    assert answers["get missing"][0] == 404
    lines = operator_lines(caplog)
    assert "op  modify-event e1 by=alice -> 200 modification 1" in lines
    assert lines.count("op  cancel-event e1 by=alice -> 200 cancelled") == 1     # the second was no change
    assert any(line.startswith("op  modify-event e1 by=alice -> refused 409") for line in lines)


def test_events_by_target_go_through_on_targets(prosody):
    async def scenario():
        groups = {}
        handlers = {"on_targets": lambda targets: [ven for target in targets for ven in groups.get(
            target.get("group_id"), [])]}
        async with control_scene(prosody, vens=2, handlers=handlers) as (vtn, vens, client):
            groups["north"] = [vens[0].ven_id]
            async with client.post("/api/events", json=hour_event(None, targets=[{"group_id": "north"}])) as made:
                created = made.status, await made.json()
            push = await vens[0].next_push("oadrDistributeEvent")
            async with client.post("/api/events", json=hour_event(None, targets=[{"group_id": "south"}])) as none:
                nobody = none.status, await none.json()
            return created, push, nobody, vtn.events(), vens

    (status, body), push, (nobody_status, nobody), events, vens = run(scenario())
    assert status == 201
    [event] = events
    assert event.event_id == body["event_id"] and list(event.deliveries) == [vens[0].ven_id]
    assert push.payload["events"][0]["event_descriptor"]["event_id"] == body["event_id"]
    assert nobody_status == 400 and nobody["field"] == "targets" and "found no VEN" in nobody["error"]


def test_reports_show_offers_subscriptions_and_the_latest_readings_and_opts_the_schedules(prosody):
    energy = {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "k"}

    async def scenario():
        handlers = {"on_register_report": lambda *args: (lambda data: None, timedelta(seconds=10))}
        async with control_scene(prosody, handlers=handlers) as (vtn, [ven], client):
            values = iter([1.5, 2.5])
            ven.offer_report("usage", "energy", lambda: next(values), energy, resource_id="meter1",
                             min_period=timedelta(seconds=10))
            [request] = (await ven.register_reports())["report_requests"]
            for _ in range(2):
                await ven.send_report(request["report_request_id"])
            await ven.request("oadrCreateOpt", {
                "opt_id": "maintenance", "opt_type": "optOut", "opt_reason": "x-schedule", "request_id": "opt-1",
                "ven_id": ven.ven_id, "created_date_time": ven.offered_reports["usage"]["created_date_time"],
                "vavailability": {"components": [{"dtstart": ven.offered_reports["usage"]["created_date_time"],
                                                  "duration": timedelta(hours=1)}]},
                "targets": [], "targets_by_type": {}})
            async with client.get("/api/reports") as reports:
                report_answer = reports.status, await reports.json()
            async with client.get("/api/reports?ven_id=someone-else") as other:
                other_answer = await other.json()
            async with client.get("/api/opts") as opts:
                opts_answer = opts.status, await opts.json()
            return report_answer, other_answer, opts_answer, ven.ven_id, request["report_request_id"]

    (status, reports), other, (opts_status, opts), ven_id, request_id = run(scenario())
    assert status == 200
    assert reports["offers"] == [{"ven_id": ven_id, "report_specifier_id": "usage",
                                  "report_name": "METADATA_TELEMETRY_USAGE", "r_ids": ["energy"]}]
    [subscription] = reports["subscriptions"]
    assert subscription["report_request_id"] == request_id and subscription["direction"] == "ven_to_vtn"
    assert subscription["state"] == "active" and subscription["r_ids"] == ["energy"]
    assert subscription["granularity"] == "PT10S"
    assert [reading["value"] for reading in reports["readings"][ven_id]["energy"]] == [1.5, 2.5]
    assert other == {"offers": [], "subscriptions": [], "readings": {"someone-else": {}}}
    assert opts_status == 200
    [opt] = opts["opts"]
    assert opt["opt_id"] == "maintenance" and opt["opt_type"] == "optOut" and opt["ven_id"] == ven_id
    assert opt["vavailability"]["components"][0]["duration"] == "PT1H"


# -- health ------------------------------------------------------------------------------------------

def test_healthz_says_503_while_the_component_is_not_connected(prosody):
    from xmpp_scene import make_vtn

    async def scenario():
        vtn = make_vtn(prosody, control_port=0)
        await vtn.control.start()            # listening, but the VTN has not connected to its server
        try:
            async with aiohttp.ClientSession() as client:
                async with client.get(vtn.control_url + "healthz") as response:
                    return response.status, await response.json()
        finally:
            await vtn.stop()

    status, body = run(scenario())
    assert status == 503
    assert body["ok"] is False and body["xmpp_connected"] is False and body["store_reachable"] is True


@pytest.mark.parametrize("host", ["0.0.0.0"])
def test_a_listener_on_a_non_loopback_host_warns(prosody, caplog, host):
    from xmpp_scene import make_vtn

    async def scenario():
        vtn = make_vtn(prosody, control_port=0, control_host=host)
        await vtn.control.start()
        await vtn.stop()

    caplog.set_level(logging.WARNING, logger="xmpp_vtn.control")
    run(scenario())
    assert any("not loopback" in record.getMessage() for record in caplog.records)
