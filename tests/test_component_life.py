"""The component's life on a real Prosody: refused handshakes, reconnecting after the server
restarts, and stopping without leaving anything behind."""
from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from xmpp_vtn import StreamFailed, VTNComponent
from xmpp_vtn.testing.prosody import ProsodyServer
from xmpp_vtn.services import codes
from xmpp_scene import make_ven, next_event, make_vtn, new_account, run, scene


def test_wrong_component_secret_fails_run_clearly(prosody):
    async def scenario():
        vtn = VTNComponent("VTN-1", prosody.component, "not-the-secret", port=prosody.component_port,
                           store=":memory:")
        with pytest.raises(StreamFailed):
            await vtn.run(timeout=10)
        await vtn.stop()
        return vtn.connected

    assert run(scenario()) is False


def test_second_component_on_the_same_jid_is_refused(prosody):
    async def scenario():
        async with scene(prosody, vens=0) as (first, _):
            second = make_vtn(prosody)
            with pytest.raises(StreamFailed):
                await second.run(timeout=10)
            await second.stop()
            return first.connected

    assert run(scenario()) is True


def test_component_reconnects_after_prosody_restarts_and_serves_again():
    with ProsodyServer() as server:
        account = new_account(server)

        async def scenario():
            vtn = make_vtn(server)
            await vtn.run()
            try:
                ven = await make_ven(server, account)
                await ven.register()
                ven_id = ven.ven_id
                lost = next_event(vtn.component.xmpp, "disconnected")
                server.stop()
                await asyncio.wait_for(lost, 10)
                await ven.stop()
                assert not vtn.connected
                back = next_event(vtn.component.xmpp, "session_start")
                server.start()
                await asyncio.wait_for(back, 20)
                # The VEN logs in again: its registration is still there, pushes reach it.
                ven = await make_ven(server, account, ven_id=ven_id)
                try:
                    await vtn.request_reregistration(ven_id)
                    push = await ven.next_push("oadrRequestReregistration")
                    answer = await ven.request("oadrCancelPartyRegistration", {
                        "request_id": "r9", "registration_id": ven.registration_id, "ven_id": ven_id})
                finally:
                    await ven.stop()
                return push, answer, vtn.vens()
            finally:
                await vtn.stop()

        push, (answer_type, answer), vens = run(scenario())
    assert push.payload["ven_id"] and answer_type == "oadrCanceledPartyRegistration"
    assert answer["response"]["response_code"] == codes.OK and vens == []


def test_stop_leaves_no_task_socket_or_warning(prosody):
    loop_errors = []

    async def scenario():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: loop_errors.append(context))
        async with scene(prosody, register=True) as (vtn, [ven]):
            await vtn.request_reregistration(ven.ven_id)
            await ven.next_push("oadrRequestReregistration")
        return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}

    gc.collect()       # what earlier tests left for the collector must not be counted as ours
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leftovers = asyncio.run(scenario())   # no wait_for wrapper: its task would count
        gc.collect()
    assert leftovers == set() and loop_errors == []
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_push_to_an_offline_ven_stays_owed_and_is_delivered_when_it_returns(prosody):
    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):
            account, ven_id = ven.jid.split("/")[0], ven.ven_id
            await ven.stop()
            delivered_now = await vtn.request_reregistration(ven_id)
            owed = [item.message_type for item in vtn.store.outbox(ven_id)]
            back = await make_ven(prosody, account, ven_id=ven_id, reregister_on_request=False)
            try:
                push = await back.next_push("oadrRequestReregistration")
                await vtn.courier.idle()
            finally:
                await back.stop()
            return delivered_now, owed, push, vtn.store.outbox(ven_id)

    delivered_now, owed, push, left = run(scenario())
    assert delivered_now is False and "oadrRequestReregistration" in owed
    assert push.payload["ven_id"] and left == []


def test_stop_during_a_slow_handler_cancels_it_and_leaves_no_task(prosody):
    started = asyncio.Event()

    async def stuck(payload):
        started.set()
        await asyncio.Event().wait()            # never returns by itself

    async def scenario():
        vtn = make_vtn(prosody, {"on_query_registration": stuck})
        await vtn.run()
        ven = await make_ven(prosody)
        request = asyncio.ensure_future(ven.query_registration())
        await started.wait()
        await vtn.stop()
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
        await ven.stop()
        return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}

    assert asyncio.run(scenario()) == set()


def test_stop_after_a_failed_run_leaves_no_task(prosody):
    async def scenario():
        vtn = VTNComponent("VTN-1", prosody.component, "wrong", port=prosody.component_port, store=":memory:")
        with pytest.raises(StreamFailed):
            await vtn.run(timeout=10)
        await vtn.stop()
        return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}

    assert asyncio.run(scenario()) == set()


def test_a_push_queued_behind_an_undeliverable_one_reports_failure_at_once(prosody):
    async def scenario():
        async with scene(prosody, register=True) as (vtn, [ven]):
            await vtn.courier.idle()                     # the oadrRegisterReport offer has been delivered
            await ven.stop()
            first = asyncio.ensure_future(vtn.request_reregistration(ven.ven_id))
            second = asyncio.ensure_future(vtn.request_reregistration(ven.ven_id))
            return await asyncio.wait_for(asyncio.gather(first, second), 10), len(vtn.store.outbox(ven.ven_id))

    results, owed = run(scenario())
    assert results == [False, False] and owed == 2
