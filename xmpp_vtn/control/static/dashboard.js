// The xmpp-vtn dashboard: draws what /api/stream sends, and drives the JSON API from its form.
// Plain DOM code: every value from the VTN is set as text, never parsed as HTML.
"use strict";

(function () {
  const state = { vens: [], connected: false, events: [], readings: {}, resolvesTargets: false };
  // event_id -> venID -> the chip drawn for that VEN's delivery, to redraw one chip alone.
  let chips = new Map();

  function $(id) { return document.getElementById(id); }

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "style") Object.assign(node.style, value);   // CSSOM: allowed by the CSP
      else if (name.startsWith("data-")) node.setAttribute(name, value);
      else node[name] = value;
    }
    for (const child of children) node.append(child);
    return node;
  }

  function when(iso) {
    if (!iso) return "-";
    return iso.replace("T", " ").replace(/(\.\d+)?Z$/, "");
  }

  function minutes(period) {
    // ISO 8601 durations as the VTN writes them: PnDTnHnMnS.
    const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(period || "");
    if (!match) return null;
    const [, d, h, m, s] = match.map((part) => Number(part || 0));
    return d * 1440 + h * 60 + m + s / 60;
  }

  function shownDuration(period) {
    const total = minutes(period);
    if (total === null) return period || "-";
    if (total === 0) return "open";
    return total >= 60 && total % 60 === 0 ? `${total / 60} h` : `${Math.round(total * 100) / 100} min`;
  }

  // -- VENs -------------------------------------------------------------------------------------

  function drawVens(data) {
    state.vens = data.vens;
    state.connected = data.connected;
    const xmpp = $("xmpp");
    xmpp.textContent = data.connected ? "XMPP connected" : "XMPP disconnected";
    xmpp.className = "badge " + (data.connected ? "online" : "offline");
    const body = $("vens").tBodies[0];
    body.replaceChildren(...data.vens.map((ven) => element("tr", { "data-ven-id": ven.ven_id },
      element("td", { class: "mono", text: ven.ven_id }),
      element("td", { text: ven.ven_name || "-" }),
      element("td", {}, element("span", { class: "badge " + ven.state, "data-state": ven.state, text: ven.state })),
      element("td", { text: when(ven.last_seen) }),
      element("td", { text: ven.transport, title: ven.transport_address }),
      element("td", { class: ven.owed_pushes ? "owed" : "", text: String(ven.owed_pushes) }))));
    $("ven-count").textContent = `(${data.vens.length})`;
    $("no-vens").hidden = data.vens.length > 0;
    drawVenChoices();
  }

  // The rows of the VENs that changed; a VEN that just registered is added.
  function patchVens(data) {
    const changed = new Map(data.vens.map((ven) => [ven.ven_id, ven]));
    const listed = new Set(state.vens.map((ven) => ven.ven_id));
    const vens = state.vens.map((ven) => changed.get(ven.ven_id) || ven)
      .concat(data.vens.filter((ven) => !listed.has(ven.ven_id)));
    drawVens({ vens, connected: state.connected });
  }

  function drawVenChoices() {
    const select = $("f-vens");
    const chosen = new Set(Array.from(select.selectedOptions, (option) => option.value));
    select.replaceChildren(...state.vens.map((ven) => element("option", {
      value: ven.ven_id, text: `${ven.ven_id} (${ven.state})`, selected: chosen.has(ven.ven_id),
    })));
  }

  // -- events -----------------------------------------------------------------------------------

  function deliveryChip(event, delivery) {
    const held = delivery.delivered_modification === null ? "not delivered"
      : delivery.up_to_date ? `has mod ${delivery.delivered_modification}` : `has mod ${delivery.delivered_modification}, owed`;
    const opt = delivery.opt_current ? delivery.opt_type : "no answer";
    return element("span", {
      class: `chip ${delivery.opt_current ? delivery.opt_type : "pending"}${delivery.up_to_date ? "" : " stale"}`,
      "data-ven": delivery.ven_id, "data-opt": delivery.opt_current ? delivery.opt_type : "",
      "data-delivered": delivery.up_to_date ? "yes" : "no",
      title: `${delivery.ven_id}: ${held}; ${opt}`,
    }, element("b", { text: delivery.ven_id }), ` ${opt} · ${held}`);
  }

  function drawEvents(data) {
    state.events = data.events;
    state.resolvesTargets = data.resolves_targets;
    $("f-targets-label").hidden = !data.resolves_targets;
    chips = new Map();
    const rows = data.events.slice().reverse().map((event) => {
      const done = event.status === "cancelled" || event.status === "completed";
      const payloads = event.intervals.map((interval) => interval.signal_payload).join(", ");
      return element("tr", { "data-event-id": event.event_id, "data-status": event.status },
        element("td", { class: "mono", text: event.event_id, title: `modification ${event.modification_number}` }),
        element("td", { text: `${event.signal_name} ${event.signal_type} ${payloads}` }),
        element("td", {}, element("span", { class: "badge status-" + event.status, text: event.status })),
        element("td", { text: when(event.start) }),
        element("td", { text: shownDuration(event.duration) }),
        element("td", {}, element("div", { class: "chips" }, ...(event.deliveries || []).map((d) => {
          const chip = deliveryChip(event, d);
          if (!chips.has(event.event_id)) chips.set(event.event_id, new Map());
          chips.get(event.event_id).set(d.ven_id, chip);
          return chip;
        }))),
        element("td", { class: "row-actions" },
          element("button", { type: "button", class: "modify", text: "Modify", disabled: done,
            onclick: () => startModify(event) }),
          element("button", { type: "button", class: "cancel danger", text: "Cancel", disabled: done,
            onclick: () => cancelEvent(event) })));
    });
    $("events").tBodies[0].replaceChildren(...rows);
    $("event-count").textContent = `(${data.events.length})`;
    $("no-events").hidden = data.events.length > 0;
  }

  // The deliveries and opt answers of the VENs that changed: their chips alone are redrawn.
  function patchDeliveries(data) {
    let whole = false;
    for (const [eventId, changed] of Object.entries(data.events)) {
      const event = state.events.find((shown) => shown.event_id === eventId);
      if (!event) continue;
      const byVen = new Map((event.deliveries || []).map((d, index) => [d.ven_id, index]));
      for (const delivery of changed) {
        const index = byVen.get(delivery.ven_id);
        const chip = (chips.get(eventId) || new Map()).get(delivery.ven_id);
        if (index === undefined || !chip) { whole = true; continue; }
        event.deliveries[index] = delivery;
        const fresh = deliveryChip(event, delivery);
        chip.replaceWith(fresh);
        chips.get(eventId).set(delivery.ven_id, fresh);
      }
    }
    if (whole) drawEvents({ events: state.events, resolves_targets: state.resolvesTargets });
  }

  // -- readings ---------------------------------------------------------------------------------

  const COLOURS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0a7ea4"];

  function chart(venId, series) {
    const width = 320, height = 90, pad = 4;
    const points = Object.values(series).flat();
    const times = points.map((p) => Date.parse(p.at)).filter((t) => !Number.isNaN(t));
    const values = points.map((p) => p.value);
    const [t0, t1] = [Math.min(...times), Math.max(...times)];
    const [v0, v1] = [Math.min(...values), Math.max(...values)];
    // By time; by position when they share one (readings of one report, or a coarse clock).
    const longest = Math.max(...Object.values(series).map((data) => data.length));
    const position = (p, i) => (t1 > t0 ? (Date.parse(p.at) - t0) / (t1 - t0) : (longest > 1 ? i / (longest - 1) : 0.5));
    const x = (p, i) => pad + position(p, i) * (width - 2 * pad);
    const y = (v) => height - pad - (v1 > v0 ? (v - v0) / (v1 - v0) : 0.5) * (height - 2 * pad);
    const svgNS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("class", "chart");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `readings of ${venId}`);
    Object.entries(series).forEach(([rId, data], index) => {
      const line = document.createElementNS(svgNS, "polyline");
      line.setAttribute("points", data.map((p, i) => `${x(p, i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" "));
      line.setAttribute("stroke", COLOURS[index % COLOURS.length]);
      line.setAttribute("fill", "none");
      line.setAttribute("stroke-width", "2");
      line.setAttribute("data-r-id", rId);
      svg.append(line);
    });
    const legend = Object.entries(series).map(([rId, data], index) => element("span", {
      class: "legend", style: { color: COLOURS[index % COLOURS.length] },
      text: `${rId}: ${data.length ? data[data.length - 1].value : "-"}`,
    }));
    return element("figure", { class: "reading", "data-ven": venId },
      element("figcaption", {}, element("b", { text: venId }), ` ${v0}–${v1} `, ...legend), svg);
  }

  function drawReadings(data) {
    state.readings = data.readings;
    const figures = Object.entries(data.readings)
      .filter(([, series]) => Object.values(series).some((points) => points.length))
      .map(([venId, series]) => chart(venId, series));
    $("charts").replaceChildren(...figures);
    $("no-readings").hidden = figures.length > 0;
  }

  // -- the form ---------------------------------------------------------------------------------

  function say(text, problem) {
    const status = $("form-status");
    status.textContent = text;
    status.className = problem ? "problem" : "";
  }

  async function call(method, path, body) {
    const response = await fetch(path, {
      method, credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 401) window.location.assign("/login");
    if (!response.ok) throw new Error(answer.field ? `${answer.field}: ${answer.error}` : (answer.error || response.statusText));
    return answer;
  }

  function formBody() {
    const venIds = Array.from($("f-vens").selectedOptions, (option) => option.value);
    const targets = $("f-targets").value.split("\n").map((line) => line.trim()).filter(Boolean)
      .map((group) => ({ group_id: group }));
    const startText = $("f-start").value;
    const start = startText ? new Date(startText + (startText.length === 16 ? ":00" : "") + "Z")
      : new Date(Date.now() + 60000);
    if (Number.isNaN(start.getTime())) throw new Error("start: not a date and time");
    const duration = Number($("f-duration").value);
    if (!Number.isInteger(duration) || duration < 1) throw new Error("duration: a whole number of minutes, 1 or more");
    const payload = $("f-payload").value;
    if (payload === "" || Number.isNaN(Number(payload))) throw new Error("payload: a number");
    const body = {
      signal_name: $("f-signal-name").value.trim(), signal_type: $("f-signal-type").value,
      intervals: [{ dtstart: start.toISOString().replace(/\.\d{3}Z$/, "Z"), duration: `PT${duration}M`,
        signal_payload: Number(payload) }],
    };
    if (venIds.length) body.ven_ids = venIds;
    else if (targets.length) body.targets = targets;
    return body;
  }

  async function submit(event) {
    event.preventDefault();
    const eventId = $("f-event-id").value;
    let body;
    try { body = formBody(); } catch (problem) { say(problem.message, true); return; }
    const button = $("f-submit");
    button.disabled = true;
    try {
      if (eventId) {
        const reason = $("f-reason").value.trim();
        if (reason) body.reason = reason;
        const answer = await call("PATCH", `/api/events/${encodeURIComponent(eventId)}`, body);
        say(`Event ${eventId} modified (modification ${answer.modification_number}).`);
        stopModify();
      } else {
        const answer = await call("POST", "/api/events", body);
        say(`Event ${answer.event_id} created.`);
      }
    } catch (problem) {
      say(problem.message, true);
    } finally {
      button.disabled = false;
    }
  }

  function startModify(event) {
    $("f-event-id").value = event.event_id;
    $("form-title").textContent = `Modify event ${event.event_id}`;
    $("f-submit").textContent = "Modify";
    $("f-back").hidden = false;
    $("f-reason-label").hidden = false;
    $("f-signal-name").value = event.signal_name;
    $("f-signal-type").value = event.signal_type;
    $("f-payload").value = event.intervals.length ? event.intervals[0].signal_payload : "";
    $("f-start").value = event.start.replace(/Z$/, "");
    $("f-duration").value = Math.max(1, Math.round(minutes(event.duration) || 60));
    const ids = new Set(event.ven_ids);
    for (const option of $("f-vens").options) option.selected = ids.has(option.value);
    say("");
    $("form-section").scrollIntoView({ block: "nearest" });
  }

  function stopModify() {
    $("f-event-id").value = "";
    $("form-title").textContent = "Create an event";
    $("f-submit").textContent = "Create";
    $("f-back").hidden = true;
    $("f-reason-label").hidden = true;
    $("f-reason").value = "";
  }

  async function cancelEvent(event) {
    try {
      await call("DELETE", `/api/events/${encodeURIComponent(event.event_id)}`);
      say(`Event ${event.event_id} cancelled.`);
    } catch (problem) {
      say(problem.message, true);
    }
  }

  // -- the live feed ----------------------------------------------------------------------------

  function connect() {
    const feed = $("feed");
    const source = new EventSource("/api/stream");
    const handlers = { vens: drawVens, events: drawEvents, reports: drawReadings, opts: () => {},
      "ven-rows": patchVens, deliveries: patchDeliveries };
    for (const [topic, draw] of Object.entries(handlers)) {
      source.addEventListener(topic, (message) => draw(JSON.parse(message.data)));
    }
    source.onopen = () => { feed.textContent = "live"; feed.className = "badge online"; };
    source.onerror = async () => {
      feed.textContent = "reconnecting"; feed.className = "badge offline";
      // A session that expired would fail forever: go to the login form instead.
      const probe = await fetch("/api/vens", { credentials: "same-origin" }).catch(() => null);
      if (probe && probe.status === 401) window.location.assign("/login");
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("event-form").addEventListener("submit", submit);
    $("f-back").addEventListener("click", () => { stopModify(); say(""); });
    connect();
  });
})();
