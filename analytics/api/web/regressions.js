// The Regressions tab: older order statuses the status guard kept from customers, counted by
// a payload path (which carrier integration sends late scans) and by the status the customer
// already had; and the account's order lifecycle that ranks them. Uses app.js's helpers.
"use strict";

const ACCOUNT_FIELDS = [
  "name", "limits", "notification_url", "failing_threshold", "target_allowlist",
  "search_keys", "embed_origins", "lifecycle", "slo",
];
let regressionsToken = 0;

// The account whose lifecycle the tab shows: an account key's own, or a platform key's pick.
const lifecycleAccount = () => (state.me && state.me.account_id) || state.account;

async function loadRegressions(period) {
  const token = ++regressionsToken;
  if (state.tab !== "regressed") return;
  loadLifecycle();
  const dimension = $("#dimension").value.trim() || "payload.carrier";
  try {
    const b = await api(`/api/v1/dispatches/breakdown?${query(scoped({ ...period, key: state.order, by: "regressions", dimension }))}`);
    if (token !== regressionsToken) return;
    $("#by-value").replaceChildren(...b.by_value.map((v) => el("span", { class: "chip", "data-value": v.value ?? "" },
      v.value ?? tr("noValue"), el("b", { text: num(v.count) }))));
    $("#by-after").replaceChildren(...b.by_after.map((a) => el("span", { class: "chip", "data-status": a.status },
      a.status, el("b", { text: num(a.count) }))));
  } catch (error) {
    if (token !== regressionsToken) return;
    $("#by-value").replaceChildren(el("span", { class: "hint", text: tr("errorLoading", { message: error.message }) }));
    $("#by-after").replaceChildren();
  }
}

async function loadLifecycle() {
  const account = lifecycleAccount();
  const shown = $("#lifecycle-shown");
  $("#lifecycle-form").hidden = true;
  $("#lifecycle-edit").hidden = true;
  if (!account) { shown.textContent = tr("lifecyclePickAccount"); return; }
  try {
    const found = await api(`/api/v1/accounts/${encodeURIComponent(account)}`);
    shown.textContent = lifecycleText(found.lifecycle);
    $("#lifecycle-edit").hidden = !may("manage");
    $("#lifecycle-edit").onclick = () => editLifecycle(found);
  } catch (error) {
    shown.textContent = tr("errorLoading", { message: error.message });
  }
}

function lifecycleText(lifecycle) {
  if (!lifecycle) return tr("lifecycleNone");
  const back = lifecycle.allowed_back.map(([from, to]) => `${from} → ${to}`).join(", ");
  return lifecycle.statuses.join(" → ") + (back ? ` · ${tr("lifecycleStepsBack", { steps: back })}` : "");
}

function editLifecycle(account) {
  const form = $("#lifecycle-form");
  const lifecycle = account.lifecycle || { statuses: [], allowed_back: [] };
  form.elements.statuses.value = lifecycle.statuses.join("\n");
  form.elements.allowed_back.value = lifecycle.allowed_back.map(([from, to]) => `${from} > ${to}`).join("\n");
  $("#lifecycle-error").textContent = "";
  form.hidden = false;
  form.onsubmit = (event) => { event.preventDefault(); saveLifecycle(account); };
}

// The form as a lifecycle (null when no status is named: the account has none), or an error.
function lifecycleBody(form) {
  const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
  const statuses = lines(form.elements.statuses.value);
  const steps = [];
  for (const line of lines(form.elements.allowed_back.value)) {
    const parts = line.split(">").map((s) => s.trim());
    if (parts.length !== 2 || !parts[0] || !parts[1]) return { error: tr("lifecycleBadStep", { line }) };
    steps.push(parts);
  }
  return { lifecycle: statuses.length ? { statuses, allowed_back: steps } : null };
}

async function saveLifecycle(account) {
  const { lifecycle, error } = lifecycleBody($("#lifecycle-form"));
  if (error) { $("#lifecycle-error").textContent = error; return; }
  const body = Object.fromEntries(ACCOUNT_FIELDS.map((k) => [k, account[k]]));
  body.lifecycle = lifecycle;
  try {
    await api(`/api/v1/accounts/${encodeURIComponent(account.id)}`, { method: "PUT", body: JSON.stringify(body) });
    toast(tr("lifecycleSaved"));
    loadLifecycle();
  } catch (failure) {
    const fields = Object.values(failure.fields || {});
    $("#lifecycle-error").textContent = fields.length ? fields.join("; ") : failure.message;
  }
}

$("#dimension-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const period = periodParams();
  if (!period.error) loadRegressions(period);
});
