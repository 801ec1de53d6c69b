// An order's story (#/orders/{order_id}): a timeline of the order's events; under each, the
// rules that fired and those that did not with their reason, and the attempts with status,
// HTTP code, duration and answer. Resend and send-latest where the key's role allows.
// Uses app.js's helpers.
"use strict";

const order = { id: "", token: 0 };

async function loadOrder(orderId) {
  const token = ++order.token;
  order.id = orderId;
  $("#order-title").textContent = tr("orderTitle", { order: orderId });
  $("#order-note").textContent = "";
  $("#order-events").replaceChildren();
  showState("#order-state", tr("loading"), "loading");
  try {
    const story = await api(`/api/v1/orders/${encodeURIComponent(orderId)}?${query(scoped())}`);
    if (token !== order.token) return;
    hideState("#order-state");
    $("#order-note").textContent = tr("rulesAsOf", { at: when(story.rules_as_of) });
    const byDispatch = new Map(story.dispatches.map((d) => [`${d.event_id}/${d.rule_id}`, d]));
    $("#order-events").replaceChildren(...story.events.map((e) => eventView(e, byDispatch)));
    if (!story.events.length) showState("#order-state", tr("orderNoEvents"), "empty");
  } catch (error) {
    if (token !== order.token) return;
    const kind = error.status === 404 ? "empty" : "error";
    showState("#order-state", error.status === 404 ? tr("orderNotFound", { order: orderId }) : tr("errorLoading", { message: error.message }), kind);
  }
}

function eventView(e, byDispatch) {
  const rules = e.rules.map((r) => ruleOutcome(r, byDispatch.get(`${e.event_id}/${r.rule_id}`)));
  return el("li", { class: "order-event", "data-testid": "order-event", "data-event-type": e.event_type },
    el("h3", {}, el("span", { text: e.event_type }), " ",
      el("span", { class: "tag", text: e.order_status || "—" }), " ",
      el("small", { class: "hint", text: when(e.published_at) })),
    e.expunged ? el("p", { class: "hint", "data-testid": "order-expunged", text: tr("expungedPayload") })
      : el("details", {}, el("summary", { text: tr("payload") }), el("pre", { text: JSON.stringify(e.payload, null, 1) })),
    el("ul", { class: "order-rules" }, ...rules));
}

function ruleOutcome(r, dispatch) {
  const fired = r.outcome === "dispatched";
  return el("li", { "data-testid": "order-rule", "data-rule-id": r.rule_id, "data-outcome": r.outcome },
    el("span", { class: `dot ${fired ? "success" : r.outcome === "held" ? "paused" : "inactive"}` }),
    el("a", { href: `#/rules/${r.rule_id}`, text: `#${r.rule_id} ${r.rule_name}` }), " ",
    el("b", { "data-testid": "order-outcome", text: tr(`outcome_${r.outcome}`) }),
    r.why ? el("span", { class: "hint", "data-testid": "order-why", text: ` — ${r.why}` }) : null,
    dispatch ? dispatchView(dispatch) : null);
}

function dispatchView(d) {
  const resend = may("resend")
    ? el("button", { "data-testid": "order-resend", onclick: () => resendDispatch(d.dispatch_id), text: tr("resendOne") })
    : null;
  return el("div", { class: "order-dispatch" },
    el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ...["attemptNo", "dispatchedAt", "status", "httpStatus", "duration", "response"]
        .map((k) => el("th", { text: tr(k) })))),
      el("tbody", {}, ...d.attempts.map((a) => el("tr", { "data-testid": "order-attempt", "data-status": a.status },
        el("td", { text: String(a.attempt) }), el("td", { text: when(a.dispatched_at) }),
        el("td", {}, el("span", { class: `dot ${a.status}` }), tr(a.status)),
        el("td", { text: String(a.http_status ?? "—") }), el("td", { text: `${num(a.duration_ms)} ms` }),
        el("td", { class: "excerpt", text: a.response_excerpt || a.error || "" }))))),
    resend);
}

async function resendDispatch(dispatchId) {
  try {
    await api("/api/v1/resend", { method: "POST", body: JSON.stringify({ dispatch_id: dispatchId }) });
    toast(tr("queued", { n: 1, order: order.id }));
    const orderId = order.id;
    setTimeout(() => { if (order.id === orderId && !$("#order-view").hidden) loadOrder(orderId); }, 3000);
  } catch (error) {
    toast(error.message);
  }
}

function wireOrder() {
  $("#order-latest").addEventListener("click", () => resendLatest([order.id], null, null));
  $("#order-reload").addEventListener("click", () => loadOrder(order.id));
}

wireOrder();
