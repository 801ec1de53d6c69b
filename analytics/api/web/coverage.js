// Order coverage on the screen: the "Undelivered orders" tab, resending orders' latest state,
// and trying a rule in its form (Preview = dry run, Send test). Uses app.js's helpers.
"use strict";

const COVERAGE_LIMIT = 500; // rows shown; the CSV export has them all

// Order numbers as a person pastes them: one per line, or separated by commas or spaces.
const orderNumbers = (text) => [...new Set(text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))];

async function loadUndelivered(period) {
  const token = ++state.coverageToken;
  const shown = state.tab === "undelivered";
  if (shown) showState("#list-state", tr("loading"), "loading");
  try {
    const page = await api(`/api/v1/orders/undelivered?${query(scoped({ from: period.from, to: period.to, limit: COVERAGE_LIMIT }))}`);
    if (token !== state.coverageToken) return;
    const count = num(page.items.length) + (page.next_cursor ? "+" : "");
    $("[data-testid=undelivered-count]").textContent = count;
    if (!shown) return;
    if (page.items.length) hideState("#list-state"); else showState("#list-state", tr("emptyUndelivered"), "empty");
    $("#coverage-rows").replaceChildren(...page.items.map(coverageRow));
    $("#coverage-all").checked = false;
    selectionChanged();
  } catch (error) {
    if (token !== state.coverageToken) return;
    $("[data-testid=undelivered-count]").textContent = "–";
    if (!shown) return;
    $("#coverage-rows").replaceChildren();
    showState("#list-state", tr("errorLoading", { message: error.message }), "error", () => loadUndelivered(periodParams()));
  }
}

function coverageRow(item) {
  const pick = el("input", { type: "checkbox", "data-testid": "coverage-pick", "aria-label": item.order_id });
  pick.addEventListener("change", selectionChanged);
  const orderLink = el("a", {
    href: `#/webhooks?${query({ tab: "all", order: item.order_id, from: state.from, to: state.to, account: state.account })}`,
    text: item.order_id,
  });
  const cells = [
    ["", pick], [tr("order"), orderLink], [tr("eventRule"), el("a", { href: `#/rules/${item.rule_id}`, text: `#${item.rule_id}` })],
    [tr("latestEvent"), item.latest_event_type], [tr("orderStatus"), item.latest_order_status || "—"],
    [tr("latestAt"), when(item.latest_at)],
    [tr("state"), el("span", { class: "status" }, el("span", { class: `dot ${item.state === "failed" ? "failure" : item.state}` }), tr(`state_${item.state}`))],
    [tr("attemptsCount"), num(item.attempts)],
  ];
  return el("tr", { "data-order-id": item.order_id, "data-rule-id": item.rule_id, "data-state": item.state },
    ...cells.map(([label, content]) => el("td", { "data-label": label }, content)));
}

function picked() {
  return $$("#coverage-rows tr").filter((tr) => $("[data-testid=coverage-pick]", tr).checked);
}

function selectionChanged() {
  const n = picked().length;
  $("#resend-latest").disabled = n === 0;
  $("#resend-latest").textContent = n ? tr("resendLatestN", { n: num(n) }) : tr("resendLatest");
}

// A bulk request answers with its result, or, when it runs longer, with a task to follow.
async function finished(body) {
  while (body && body.task_id && body.state === "running") {
    toast(tr("taskRunning", { n: num((body.progress && body.progress.queued) || 0) }), 1500);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    body = await api(body.status_url);
  }
  if (body && body.task_id) {
    if (body.state === "failed") throw new Error(body.error);
    return body.result;
  }
  return body;
}

// Resend each order's latest event (to one rule, or to every rule it matches) and show the
// new attempts in "All webhooks sent" as they arrive.
async function resendLatest(orders, ruleId, form) {
  const body = { order_ids: orders };
  if (ruleId) body.rule_id = ruleId;
  if (state.account) body.account_id = state.account;
  const sentAt = new Date();
  try {
    const queued = await finished(await api("/api/v1/resend/latest", { method: "POST", body: JSON.stringify(body) }));
    if (form) $("#resend-modal").close();
    const missing = queued.not_found_count ? tr("notFound", { n: num(queued.not_found_count), orders: queued.not_found.slice(0, 5).join(", ") }) : "";
    toast(`${tr("queuedLatest", { n: num(queued.queued), orders: num(queued.orders) })} ${missing}`, 8000);
    if (queued.queued) watchForResend("", new Set(queued.dispatch_ids), sentAt);
  } catch (error) {
    if (form) showErrors(form, Object.keys(error.fields).length ? error.fields : { body: error.message });
    else toast(error.message);
  }
}

function resendPicked() {
  const rows = picked();
  const rules = new Set(rows.map((tr) => tr.dataset.ruleId));
  // One rule picked: only that rule's webhooks; several: each order's matching rules.
  const ruleId = rules.size === 1 ? Number([...rules][0]) : null;
  resendLatest([...new Set(rows.map((tr) => tr.dataset.orderId))], ruleId, null);
}

// ---- trying a rule in its form -----------------------------------------------------------
function tryout(selector, ...children) {
  const box = $(selector);
  box.hidden = false;
  box.replaceChildren(...children);
}

async function previewRule() {
  const form = $("#rule-form");
  clearErrors(form);
  const { body, bad } = ruleBody(form);
  if (bad) return showErrors(form, bad);
  const editing = state.rules.find((r) => String(r.id) === form.dataset.ruleId);
  const asked = { event_types: body.event_types, filters: body.filters };
  const account = body.account_id || (editing ? editing.account_id : state.account);
  if (account) asked.account_id = account;
  tryout("#rule-preview-result", el("span", { class: "hint", text: tr("loading") }));
  try {
    const r = await api("/api/v1/rules/dry-run", { method: "POST", body: JSON.stringify(asked) });
    tryout("#rule-preview-result",
      el("strong", { "data-testid": "preview-counts", text: tr("previewCounts", { events: num(r.matched_events), orders: num(r.matched_orders) }) }),
      el("ul", {}, ...r.sample.map((s) => el("li", { text: `${s.order_id} · ${s.event_type} · ${when(s.published_at)}` }))));
  } catch (error) {
    if (Object.keys(error.fields).length) showErrors(form, error.fields);
    tryout("#rule-preview-result", el("span", { class: "form-error", text: error.message }));
  }
}

async function testRule() {
  const id = $("#rule-form").dataset.ruleId;
  if (!id) return;
  tryout("#rule-test-result", el("span", { class: "hint", text: tr("testSending") }));
  try {
    const r = await api(`/api/v1/rules/${id}/test`, { method: "POST" });
    const head = `${tr(r.status)} · HTTP ${r.http_status ?? "—"} · ${reasonText(state.lang, r.reason)} · ${num(r.duration_ms)} ms`;
    tryout("#rule-test-result",
      el("strong", { "data-testid": "test-outcome", "data-status": r.status }, el("span", { class: `dot ${r.status}` }), head),
      r.error ? el("p", { class: "form-error", text: r.error }) : "",
      el("pre", { text: r.response_excerpt || tr("none") }));
  } catch (error) {
    tryout("#rule-test-result", el("span", { class: "form-error", "data-testid": "test-outcome", text: error.message }));
  }
}

function wireCoverage() {
  $("#resend-latest").addEventListener("click", resendPicked);
  $("#coverage-all").addEventListener("change", (e) => {
    $$("[data-testid=coverage-pick]").forEach((box) => { box.checked = e.target.checked; });
    selectionChanged();
  });
  $("#rule-preview").addEventListener("click", previewRule);
  $("#rule-test").addEventListener("click", testRule);
}

wireCoverage();
