"""The dashboard in a real browser: headless Chromium (the Debian package, driven by Playwright's
Python API) against a VTN on a real Prosody with a simulated VEN.

An operator logs in, watches the VEN come online without a reload, creates an event from the
form, sees the VEN's optIn appear, modifies and cancels it, and sees the VEN's readings drawn.
The latency from the VEN sending its answer to the answer showing on the page is measured and
printed (a figure, not an assertion). Set DASHBOARD_SCREENSHOT=path to keep the screenshot.
"""
from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

from playwright.async_api import async_playwright

from control_scene import TOKEN, control_scene
from xmpp_scene import make_ven, run

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ENERGY = {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "k"}

# Records, in the page, when the first element matching a selector appears (DOM change, then the
# next frame: when the operator can see it).
WATCH = """selector => new Promise(resolve => {
    const seen = () => document.querySelector(selector);
    const done = () => requestAnimationFrame(() => resolve(Date.now()));
    if (seen()) return done();
    new MutationObserver((_, observer) => { if (seen()) { observer.disconnect(); done(); } })
        .observe(document.body, {childList: true, subtree: true, attributes: true});
})"""


def test_operator_watches_a_ven_come_online_creates_an_event_sees_the_opt_in_and_cancels_it(prosody, tmp_path):
    assert Path(CHROMIUM).exists(), "the browser test needs Chromium: `make servers` installs the Debian package"
    handlers = {"on_register_report": lambda *args: (lambda data: None, timedelta(seconds=10))}

    async def scenario():
        async with control_scene(prosody, vens=0, handlers=handlers) as (vtn, _, client), async_playwright() as driver:
            browser = await driver.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 860})
            ven = None
            try:
                page = browser.pages[0] if browser.pages else await browser.new_page()
                problems = []
                page.on("console", lambda message: message.type == "error" and problems.append(message.text))
                page.on("pageerror", lambda error: problems.append(str(error)))
                await page.goto(vtn.control_url)
                login_url = page.url
                await page.fill("#token", TOKEN)
                await page.click("button[type=submit]")
                await page.wait_for_selector("#feed.online")
                navigations = []                       # from here on, the page must never reload
                page.on("framenavigated", lambda frame: navigations.append(frame.url))

                # A VEN registers: its row appears, online, without a reload.
                ven = await make_ven(prosody)
                registered = time.time()
                await ven.register()
                row = f'#vens tr[data-ven-id="{ven.ven_id}"] [data-state="online"]'
                online_at = await page.evaluate(WATCH, row) / 1000

                # An event from the form; the VEN's optIn shows.
                sent = []
                answer = ven.created_event

                async def timed_answer(answers):
                    sent.append(time.time())
                    return await answer(answers)
                ven.created_event = timed_answer
                await page.select_option("#f-vens", ven.ven_id)
                await page.fill("#f-payload", "2")
                await page.fill("#f-start", "2030-01-31T14:00:00")
                await page.fill("#f-duration", "30")
                opt_in = page.evaluate(WATCH, '#events .chip[data-opt="optIn"][data-delivered="yes"]')
                await page.click("#f-submit")
                shown_at = await opt_in / 1000
                push = await ven.next_push("oadrDistributeEvent")
                event_id = push.payload["events"][0]["event_descriptor"]["event_id"]
                status = await page.text_content("#form-status")

                # Readings drawn as a chart.
                values = iter([3.0, 4.5, 4.0])
                ven.offer_report("usage", "energy", lambda: next(values), ENERGY, resource_id="meter1",
                                 min_period=timedelta(seconds=10))
                [request] = (await ven.register_reports())["report_requests"]
                for _ in range(3):
                    await ven.send_report(request["report_request_id"])
                await page.wait_for_selector(f'figure.reading[data-ven="{ven.ven_id}"] polyline[points*=" "]')
                legend = await page.text_content(f'figure.reading[data-ven="{ven.ven_id}"] figcaption')
                await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

                # Modify from the form: the VEN gets modification 1 and answers it.
                await page.click(f'#events tr[data-event-id="{event_id}"] button.modify')
                await page.fill("#f-payload", "3")
                await page.fill("#f-reason", "grid stress")
                await page.click("#f-submit")
                modified = await ven.next_push("oadrDistributeEvent")
                await page.wait_for_selector(f'#events tr[data-event-id="{event_id}"] td[title="modification 1"]')
                await page.wait_for_selector('#events .chip[data-opt="optIn"][data-delivered="yes"]')

                # Cancel: the VEN is told, the row says cancelled.
                await page.click(f'#events tr[data-event-id="{event_id}"] button.cancel')
                cancelled = await ven.next_push("oadrDistributeEvent")
                await page.wait_for_selector(f'#events tr[data-event-id="{event_id}"][data-status="cancelled"]')
                return dict(login_url=login_url, online_latency=online_at - registered,
                            answer_latency=shown_at - sent[0], status=status, legend=legend, event_id=event_id,
                            modified=modified, cancelled=cancelled, navigations=navigations, problems=problems,
                            state=vtn.event(event_id))
            finally:
                await browser.close()
                if ven is not None:
                    await ven.stop()

    seen = run(scenario(), timeout=120)
    print(f"dashboard latency: VEN answer -> page {seen['answer_latency'] * 1000:.0f} ms; "
          f"registration -> online row {seen['online_latency'] * 1000:.0f} ms")
    assert seen["login_url"].endswith("/login")
    assert seen["status"] == f"Event {seen['event_id']} created."
    assert "energy: 4" in seen["legend"]
    [event] = seen["modified"].payload["events"]
    assert event["event_descriptor"]["modification_number"] == 1
    assert event["event_descriptor"]["modification_reason"] == "grid stress"
    assert event["event_signals"][0]["intervals"][0]["signal_payload"] == 3.0
    assert seen["cancelled"].payload["events"][0]["event_descriptor"]["event_status"] == "cancelled"
    assert seen["state"].status == "cancelled"
    assert seen["navigations"] == [] and seen["problems"] == []
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        shutil.copy(tmp_path / "dashboard.png", os.environ["DASHBOARD_SCREENSHOT"])
