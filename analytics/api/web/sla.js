// The SLA tab: how long order events took to reach the customer's first 2xx, split by whose
// delay it was (producer, platform, customer), the share received in time, and the orders
// that breached the account's target, each linked to its history. Uses app.js's helpers.
"use strict";

const SLA_STAGES = ["producer", "platform", "customer", "total"];
const SLA_ROWS = 200; // breaches shown; the CSV export has them all
let slaToken = 0;

const seconds = (value) => (value === null || value === undefined ? "—" : `${num(value)} s`);

async function loadSla(period) {
  const token = ++slaToken;
  const shown = state.tab === "sla";
  const params = scoped({ from: period.from, to: period.to });
  try {
    const sla = await api(`/api/v1/sla?${query(params)}`);
    if (token !== slaToken) return;
    $("[data-testid=sla-count]").textContent = num(sla.breaches);
    if (!shown) return;
    renderSla(sla);
    const page = await api(`/api/v1/sla/breaches?${query({ ...params, limit: SLA_ROWS })}`);
    if (token !== slaToken) return;
    if (page.items.length) hideState("#list-state"); else showState("#list-state", tr("emptySla"), "empty");
    $("#sla-rows").replaceChildren(...page.items.map(breachRow));
  } catch (error) {
    if (token !== slaToken) return;
    $("[data-testid=sla-count]").textContent = "–";
    if (!shown) return;
    $("#sla-rows").replaceChildren();
    showState("#list-state", tr("errorLoading", { message: error.message }), "error", () => loadSla(periodParams()));
  }
}

function renderSla(sla) {
  const compliance = sla.compliance === null ? "—" : `${num(Math.round(sla.compliance * 1000) / 10)}%`;
  $("[data-testid=sla-compliance]").textContent = compliance;
  $("[data-testid=sla-target]").textContent = sla.slo
    ? tr("slaTarget", { p95: num(sla.slo.p95_seconds), open: num(sla.slo.max_undelivered_seconds) })
    : tr("slaNoTarget");
  $("#sla-stages").replaceChildren(...SLA_STAGES.map((stage) => {
    const levels = sla.stages[stage];
    const blamed = stage === "total" ? "" : tr("slaBlamed", { n: num(sla.blame[stage]) });
    return el("div", { class: "stage", "data-stage": stage, "data-testid": `sla-${stage}` },
      el("h4", { text: tr(`stage_${stage}`) }),
      el("p", {}, el("b", { text: seconds(levels.p95) }), " p95"),
      el("small", { class: "hint", text: `p50 ${seconds(levels.p50)} · p99 ${seconds(levels.p99)}` }),
      blamed ? el("small", { class: "blamed", text: blamed }) : "");
  }));
}

function breachRow(item) {
  const orderLink = el("a", {
    href: `#/webhooks?${query({ tab: "all", order: item.order_id, from: state.from, to: state.to, account: state.account })}`,
    text: item.order_id,
  });
  const cells = [
    [tr("order"), orderLink], [tr("eventRule"), el("a", { href: `#/rules/${item.rule_id}`, text: `#${item.rule_id}` })],
    [tr("eventType"), item.event_type], [tr("occurredAt"), when(item.occurred_at)],
    [tr("lag"), seconds(item.lag_s)], [tr("slaStage"), tr(`stage_${item.stage}`)],
    [tr("state"), item.open ? tr("slaOpen") : tr("slaLate")],
  ];
  return el("tr", { "data-order-id": item.order_id, "data-stage": item.stage, "data-open": String(item.open) },
    ...cells.map(([label, content]) => el("td", { "data-label": label }, content)));
}
