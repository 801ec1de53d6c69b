// The management screen: Communication > Webhook (delivery history) and webhook rules.
// Plain browser JavaScript over the v1 API; state lives in the URL hash.
"use strict";

const RETENTION_DAYS = 30;
const PAGE_SIZE = 50;
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const state = {
  lang: localStorage.getItem("disparo.lang") || (navigator.language.startsWith("pt") ? "pt-BR" : "en"),
  tab: "failure", order: "", reason: "", rule: "", from: "", to: "",
  cursors: [null], page: 0, nextCursor: null, rules: [], fresh: new Set(), listToken: 0, countsToken: 0, breakdownToken: 0, coverageToken: 0,
  key: sessionStorage.getItem("disparo.key") || "", me: null,
  account: "", // a platform key's chosen account ("" = all); an account key sees its own only
};
// What each role may do, as the API's `may` says; controls marked data-needs hide otherwise.
const may = (what) => Boolean(state.me && state.me.may.includes(what));

const tr = (key, vars) => t(state.lang, key, vars);
const num = (n) => new Intl.NumberFormat(state.lang).format(n);
const pct = (r) => new Intl.NumberFormat(state.lang, { style: "percent", maximumFractionDigits: 2 }).format(r);
const when = (iso) => new Intl.DateTimeFormat(state.lang, { dateStyle: "short", timeStyle: "medium" }).format(new Date(iso));
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

// ---- dates: the picker holds local calendar days; the API gets instants ----------------
const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
const localMidnight = (day) => { const [y, m, d] = day.split("-").map(Number); return new Date(y, m - 1, d); };
const addDays = (date, n) => { const c = new Date(date); c.setDate(c.getDate() + n); return c; };
const oldestDay = () => isoDay(addDays(new Date(), -(RETENTION_DAYS - 1)));

function periodParams() {
  if (!state.from || !state.to) return { error: tr("rangeInvalid") };
  if (state.from > state.to) return { error: tr("rangeInvalid") };
  if (state.from < oldestDay()) return { error: tr("rangeTooOld", { date: oldestDay() }) };
  return { from: localMidnight(state.from).toISOString(), to: addDays(localMidnight(state.to), 1).toISOString() };
}

// ---- API ---------------------------------------------------------------------------------
// The key goes in the Authorization header of every call (never a cookie: no CSRF).
async function call(path, options = {}) {
  const headers = { "content-type": "application/json", ...(options.headers || {}) };
  if (state.key) headers.authorization = `Bearer ${state.key}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && state.me) {
    const body = await response.clone().json().catch(() => null);
    // Several calls may be refused at once: the first signs out (and aborts the others).
    if (state.me) signOut(tr("signedOut", { message: (body && body.error) || "401" }));
  }
  return response;
}

async function api(path, options = {}) {
  const response = await call(path, options);
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((body && body.error) || `HTTP ${response.status}`);
    error.status = response.status;
    error.fields = (body && body.fields) || {};
    error.currentVersion = body && body.current_version;
    throw error;
  }
  return body;
}

// ---- sign-in -----------------------------------------------------------------------------
function showSignIn(message) {
  $$("main > section").forEach((s) => { s.hidden = s.id !== "signin-view"; });
  $("#sidebar").hidden = true;
  $("#who").hidden = $("#sign-out").hidden = true;
  $("#account-name").hidden = $("#account-pick").hidden = true;
  $("#signin-error").textContent = message || "";
  $("#signin-form").elements.api_key.focus();
}

function signOut(message) {
  stopLive();
  state.key = "";
  state.me = null;
  sessionStorage.removeItem("disparo.key");
  showSignIn(message);
}

async function signIn(key) {
  state.key = key;
  try {
    state.me = await api("/api/v1/me");
  } catch (error) {
    state.key = "";
    return showSignIn(tr("keyRejected", { message: error.message }));
  }
  if (!may("read")) {
    state.key = "";
    state.me = null;
    return showSignIn(tr("publisherOnly"));
  }
  sessionStorage.setItem("disparo.key", key);
  await loadAccounts();
  if (!state.me) return; // refused meanwhile (revoked): the sign-in form is back
  $("#sidebar").hidden = false;
  const who = tr("signedInAs", { name: state.me.name, role: state.me.role });
  $("#who").textContent = state.me.account_id ? `${state.me.account_id} — ${who}` : who;
  $("#who").hidden = $("#sign-out").hidden = false;
  $$("[data-needs]").forEach((node) => { node.hidden = !may(node.dataset.needs); });
  // A portal link is a customer's view: its webhooks and rules, not the platform's audit
  // or coverage (a link limited to some rules could not read them).
  $$("[data-testid=nav-audit], [data-testid=tab-undelivered]").forEach((node) => { node.hidden = Boolean(state.me.portal); });
  route();
}

// An account key's page is that customer's portal: its name on top. A platform key picks
// one account (or all) in a selector; every list and count follows it.
async function loadAccounts() {
  let items = [];
  try {
    items = (await api("/api/v1/accounts")).items;
  } catch (error) {
    items = [];
  }
  if (!state.me) return;
  const own = state.me.account_id;
  $("#account-name").hidden = !own;
  $("#account-pick").hidden = Boolean(own);
  if (own) {
    state.account = "";
    const mine = items.find((a) => a.id === own);
    $("#account-name").textContent = mine ? mine.name : own;
    return;
  }
  const ids = new Set(items.map((a) => a.id));
  const choices = [...items, ...(ids.has("default") ? [] : [{ id: "default", name: "default" }])];
  $("#account-select").replaceChildren(
    el("option", { value: "", text: tr("allAccounts") }),
    ...choices.map((a) => el("option", { value: a.id, text: a.name === a.id ? a.id : `${a.name} (${a.id})` })));
  $("#account-select").value = state.account;
}
const scoped = (params = {}) => ({ ...params, account_id: state.account });
const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString();

// ---- routing -----------------------------------------------------------------------------
function writeHash() {
  const params = query({ tab: state.tab, order: state.order, reason: state.reason, rule: state.rule, from: state.from, to: state.to, account: state.account });
  const hash = `#/webhooks?${params}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

function showView(id) {
  $$("main > section").forEach((s) => { s.hidden = s.id !== id; });
}

function route() {
  if (!state.me) return;
  const [path, search] = (location.hash.slice(1) || "/webhooks").split("?");
  const parts = path.split("/").filter(Boolean);
  $("#sidebar").classList.remove("open");
  $$(".nav-item").forEach((a) => a.classList.toggle("active", a.dataset.nav === (parts[0] || "webhooks")));
  if (parts[0] !== "webhooks" && parts[0]) stopLive();
  if (parts[0] === "orders" && parts[1]) {
    showView("order-view");
    loadOrder(decodeURIComponent(parts[1]));
    return;
  }
  if (parts[0] === "rules") {
    showView("rules-view");
    loadRules().then(() => { if (parts[1] && may("manage")) openRule(Number(parts[1])); });
    return;
  }
  if (parts[0] === "audit") {
    showView("audit-view");
    loadAudit();
    return;
  }
  const params = new URLSearchParams(search || "");
  state.tab = TABS.includes(params.get("tab")) ? params.get("tab") : "failure";
  state.order = params.get("order") || "";
  state.reason = params.get("reason") || "";
  state.rule = params.get("rule") || "";
  if (!state.me.account_id) state.account = params.get("account") || "";
  if ($("#account-select").value !== state.account) $("#account-select").value = state.account;
  state.from = params.get("from") || state.from || isoDay(addDays(new Date(), -6));
  state.to = params.get("to") || state.to || isoDay(new Date());
  showView("webhooks-view");
  refresh();
}

// ---- the webhook history -----------------------------------------------------------------
// Each is a status filter of the list, but the last: it lists orders (see coverage.js).
const TABS = ["failure", "all", "held", "superseded", "regressed", "undelivered", "sla"];

function refresh() {
  state.cursors = [null];
  state.page = 0;
  writeHash();
  renderControls();
  const period = periodParams();
  if (period.error) {
    showState("#list-state", period.error, "error");
    $("#rows").replaceChildren();
    return;
  }
  loadCounts(period);
  loadUndelivered(period); // its count is shown on every tab, its rows on its own
  loadSla(period); // sla.js: the same for the breaches
  startLive(); // stops where live rows cannot belong (see live.js)
  if (state.tab === "undelivered" || state.tab === "sla") return;
  loadBreakdown(period);
  loadRegressions(period); // regressions.js: the Regressions tab's breakdown and lifecycle
  loadPage();
}

function renderControls() {
  $("#from").value = state.from;
  $("#to").value = state.to;
  $("#from").min = $("#to").min = oldestDay();
  $("#from").max = $("#to").max = isoDay(new Date());
  $("#order").value = state.order;
  $$(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === state.tab));
  $("#breakdown").hidden = state.tab !== "failure";
  $("#regressions").hidden = state.tab !== "regressed";
  const coverage = state.tab === "undelivered";
  const sla = state.tab === "sla";
  $("#coverage").hidden = !coverage;
  $("#sla").hidden = !sla;
  $("#history").hidden = $("#pager").hidden = coverage || sla;
  const chips = [];
  const remove = (key) => () => { state[key] = ""; refresh(); };
  if (state.order) chips.push(filterChip(tr("orderFilter", { value: state.order }), remove("order"), "order"));
  if (state.reason) chips.push(filterChip(tr("reasonFilter", { value: reasonText(state.lang, state.reason) }), remove("reason"), "reason"));
  if (state.rule) chips.push(filterChip(tr("ruleFilter", { value: state.rule }), remove("rule"), "rule"));
  $("#active-filters").replaceChildren(...chips);
  const span = scoped({ from: periodParams().from, to: periodParams().to });
  $("#export").href = coverage ? `/api/v1/orders/undelivered/export.csv?${query(span)}`
    : sla ? `/api/v1/sla/breaches/export.csv?${query(span)}`
    : `/api/v1/dispatches/export.csv?${query(listParams())}`;
}

function filterChip(label, onRemove, name) {
  return el("span", { class: "chip on", "data-testid": `filter-${name}` }, label,
    el("button", { class: "close", title: tr("removeFilter"), "aria-label": tr("removeFilter"), onclick: onRemove, text: "×" }));
}

function listParams() {
  const period = periodParams();
  return {
    from: period.from, to: period.to, status: state.tab,
    key: state.order, reason: state.tab === "failure" ? state.reason : "",
    rule_id: state.tab === "failure" ? state.rule : "", account_id: state.account,
  };
}

// Each loader drops an answer that a newer request replaced: a slow answer for the previous
// filter must not overwrite the current one.
async function loadCounts(period) {
  const token = ++state.countsToken;
  try {
    const s = await api(`/api/v1/dispatches/summary?${query(scoped({ ...period, key: state.order }))}`);
    if (token !== state.countsToken) return;
    live.summary = { ...s };
    showSummary(s);
  } catch (error) {
    if (token !== state.countsToken) return;
    for (const name of ["failed", "total", "held", "superseded", "regressed"]) $(`[data-testid=${name}-count]`).textContent = "–";
  }
}

function showSummary(s) {
  $("[data-testid=failed-count]").textContent = num(s.failed);
  $("[data-testid=failed-pct]").textContent = `(${pct(s.failure_rate)})`;
  $("[data-testid=total-count]").textContent = num(s.total);
  $("[data-testid=held-count]").textContent = num(s.held);
  $("[data-testid=superseded-count]").textContent = num(s.superseded);
  $("[data-testid=regressed-count]").textContent = num(s.regressed);
}

async function loadBreakdown(period) {
  const token = ++state.breakdownToken;
  if (state.tab !== "failure") return;
  try {
    const b = await api(`/api/v1/dispatches/breakdown?${query(scoped({ ...period, key: state.order }))}`);
    if (token !== state.breakdownToken) return;
    const toggle = (key, value) => () => { state[key] = state[key] === String(value) ? "" : String(value); refresh(); };
    $("#by-reason").replaceChildren(...b.by_reason.map((r) => el("button", {
      class: `chip${state.reason === r.reason ? " on" : ""}`, "data-reason": r.reason, onclick: toggle("reason", r.reason),
    }, reasonText(state.lang, r.reason), el("b", { text: num(r.count) }))));
    $("#by-rule").replaceChildren(...b.by_rule.map((r) => el("button", {
      class: `chip${state.rule === String(r.rule_id) ? " on" : ""}`, "data-rule": r.rule_id, onclick: toggle("rule", r.rule_id),
    }, `#${r.rule_id}`, el("b", { text: num(r.count) }))));
  } catch (error) {
    if (token !== state.breakdownToken) return;
    $("#by-reason").replaceChildren(el("span", { class: "hint", text: tr("errorLoading", { message: error.message }) }));
    $("#by-rule").replaceChildren();
  }
}

async function loadPage() {
  const token = ++state.listToken;
  showState("#list-state", tr("loading"), "loading");
  const cursor = state.cursors[state.page];
  try {
    const page = await api(`/api/v1/dispatches?${query({ ...listParams(), limit: PAGE_SIZE, cursor })}`);
    if (token !== state.listToken) return page; // a newer request replaced this one
    state.nextCursor = page.next_cursor;
    showSearched(page.searched);
    renderRows(page.items);
    return page;
  } catch (error) {
    if (token !== state.listToken) return null;
    $("#rows").replaceChildren();
    showState("#list-state", tr("errorLoading", { message: error.message }), "error", loadPage);
    return null;
  }
}

// What a search looked for: the order number, and the orders its search keys found.
function showSearched(searched) {
  const note = $("#searched");
  if (!searched) { note.hidden = true; return; }
  const found = searched.orders.map((o) => tr("searchedKey", { order: o.order_id, path: o.path }));
  note.textContent = found.length ? tr("searchedFound", { key: searched.key, found: found.join(", ") }) : tr("searchedOrder", { key: searched.key });
  note.hidden = false;
}

function renderRows(items) {
  const empties = { all: "emptyAll", failure: "emptyFailed", held: "emptyHeld", superseded: "emptySuperseded", regressed: "emptyRegressed" };
  const empty = state.order ? tr("emptyOrder", { order: state.order }) : tr(empties[state.tab]);
  if (items.length) hideState("#list-state"); else showState("#list-state", empty, "empty");
  $("#rows").replaceChildren(...items.map(rowOf));
  if (state.page === 0) mergeLive(); // rows that arrived while the page loaded
  const first = state.page * PAGE_SIZE;
  $("#page-info").textContent = items.length ? tr("showing", { a: num(first + 1), b: num(first + items.length) }) : "";
  $("#prev").disabled = state.page === 0;
  $("#next").disabled = !state.nextCursor;
}

function rowOf(item) {
  const orderLink = el("a", {
    href: `#/orders/${encodeURIComponent(item.order_id)}`,
    "data-testid": "order-link", onclick: (e) => e.stopPropagation(), text: item.order_id,
  });
  const ruleLink = el("a", { href: `#/rules/${item.rule_id}`, onclick: (e) => e.stopPropagation(), text: `#${item.rule_id}` });
  const status = el("span", { class: "status" }, el("span", { class: `dot ${item.status}` }), tr(item.status),
    item.manual ? el("span", { class: "tag", text: tr("manual") }) : null);
  const cells = [
    [tr("order"), orderLink], [tr("orderStatus"), item.order_status || "—"],
    [tr("dispatchedAt"), when(item.dispatched_at)], [tr("eventRule"), ruleLink],
    [tr("status"), status], [tr("url"), item.url],
  ];
  const row = el("tr", {
    "data-dispatch-id": item.dispatch_id, "data-attempt-id": item.attempt_id, "data-status": item.status, "data-manual": String(item.manual),
    "data-dispatched-at": item.dispatched_at, class: state.fresh.has(item.attempt_id) ? "fresh" : null,
    onclick: () => openDetail(item.dispatch_id),
  }, ...cells.map(([label, content], i) => el("td", { "data-label": label, class: i === 5 ? "url" : null, title: i === 5 ? item.url : null }, content)));
  return row;
}

function showState(selector, text, kind, retry) {
  const box = $(selector);
  box.hidden = false;
  box.className = `state ${kind}`;
  box.dataset.kind = kind;
  box.replaceChildren(el("span", { text }));
  if (retry) box.append(" ", el("button", { onclick: retry, text: tr("retry") }));
}
const hideState = (selector) => { $(selector).hidden = true; };

// ---- one dispatch's attempts ---------------------------------------------------------------
async function openDetail(dispatchId) {
  const body = $("#detail-body");
  $("#detail").hidden = false;
  body.replaceChildren(el("p", { class: "hint", text: tr("loading") }));
  try {
    const detail = await api(`/api/v1/dispatches/${encodeURIComponent(dispatchId)}`);
    body.replaceChildren(el("p", { class: "hint", text: dispatchId }), ...detail.attempts.map(attemptView));
  } catch (error) {
    body.replaceChildren(el("p", { class: "state error", text: tr("errorLoading", { message: error.message }) }));
  }
}

function attemptView(a) {
  const headers = Object.entries(a.request_headers || {});
  const facts = [
    [tr("dispatchedAt"), when(a.dispatched_at)], [tr("status"), tr(a.status)],
    [tr("httpStatus"), a.http_status ?? "—"], [tr("reason"), reasonText(state.lang, a.reason)],
    [tr("duration"), `${num(a.duration_ms)} ms`], [tr("url"), a.url],
  ];
  if (a.error) facts.push([tr("error"), a.error]);
  return el("section", { class: "attempt", "data-testid": "attempt" },
    el("h3", {}, el("span", { class: `dot ${a.status}` }), tr("attempt", { n: a.attempt }), a.manual ? el("span", { class: "tag", text: tr("manual") }) : null),
    el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])),
    el("h4", { text: tr("requestHeaders") }),
    el("pre", { "data-testid": "request-headers", text: headers.length ? headers.map(([k, v]) => `${k}: ${v}`).join("\n") : tr("none") }),
    el("h4", { text: tr("requestBody") }), el("pre", { text: a.request_excerpt || tr("none") }),
    el("h4", { text: tr("response") }), el("pre", { text: a.response_excerpt || tr("none") }));
}

// ---- send manually -------------------------------------------------------------------------
async function openResend() {
  clearErrors($("#resend-form"));
  $("#resend-order").value = state.order;
  $("#resend-event").value = "";
  $("#resend-orders").value = "";
  if (!state.rules.length) await fetchRules().catch(() => {});
  $("#resend-rule").replaceChildren(el("option", { value: "", text: tr("anyRule") }),
    ...state.rules.map((r) => el("option", { value: r.id, text: `#${r.id} ${r.name}` })));
  $("#resend-modal").showModal();
  $("#resend-order").focus();
}

async function submitResend(event) {
  event.preventDefault();
  const form = $("#resend-form");
  clearErrors(form);
  const pasted = orderNumbers($("#resend-orders").value);
  if (pasted.length) return resendLatest(pasted, $("#resend-rule").value ? Number($("#resend-rule").value) : null, form);
  const order = $("#resend-order").value.trim();
  if (!order) return showErrors(form, { order_id: tr("orderRequired") });
  const body = { order_id: order };
  if ($("#resend-event").value.trim()) body.event_type = $("#resend-event").value.trim();
  if ($("#resend-rule").value) body.rule_id = Number($("#resend-rule").value);
  const sentAt = new Date();
  try {
    const queued = await api("/api/v1/resend", { method: "POST", body: JSON.stringify(body) });
    $("#resend-modal").close();
    toast(tr("queued", { n: num(queued.queued), order }));
    watchForResend(order, new Set(queued.dispatch_ids), sentAt);
  } catch (error) {
    if (error.status === 409 && error.currentVersion) return reloadStale(id, error.currentVersion);
    showErrors(form, Object.keys(error.fields).length ? error.fields : { body: error.message });
  }
}

// Someone changed the rule since the form was filled: show it as it is now, say so.
async function reloadStale(id, version) {
  const fresh = await api(`/api/v1/rules/${id}`);
  state.rules = state.rules.map((r) => (r.id === fresh.id ? fresh : r));
  openRule(fresh.id);
  showErrors($("#rule-form"), { body: tr("staleRule", { id, version }) });
}

// The resend travels Kafka -> worker -> ClickHouse; poll the list until all its rows are there.
function watchForResend(order, dispatchIds, sentAt) {
  state.tab = "all";
  state.reason = state.rule = "";
  if (state.order && state.order !== order) state.order = order;
  if (state.to < isoDay(new Date())) state.to = isoDay(new Date());
  refresh();
  const deadline = Date.now() + 60000;
  // The live stream (live.js) or this poll, whichever sees them all first, says so.
  const watch = { ids: dispatchIds, seen: new Set(), done: false, since: sentAt.getTime() - 5000 };
  live.watches.push(watch);
  const poll = async () => {
    if (watch.done) return;
    state.cursors = [null];
    state.page = 0;
    const page = await loadPage();
    const fresh = (page ? page.items : []).filter((i) => watched(watch, i));
    fresh.forEach((i) => { state.fresh.add(i.attempt_id); watch.seen.add(i.dispatch_id); });
    if (fresh.length) {
      renderRows(page.items);
      loadCounts(periodParams());
    }
    if (watch.seen.size >= watch.ids.size) finishWatch(watch);
    else if (Date.now() < deadline) setTimeout(poll, 1000);
    else watch.done = true;
  };
  setTimeout(poll, 500);
}

const watched = (watch, item) => item.manual && watch.ids.has(item.dispatch_id) && new Date(item.dispatched_at).getTime() >= watch.since;

function finishWatch(watch) {
  if (watch.done) return;
  watch.done = true;
  live.watches = live.watches.filter((w) => w !== watch);
  toast(tr("appeared"));
}

// The export link names the CSV; the download goes through fetch so it carries the key.
async function exportCsv(event) {
  event.preventDefault();
  const link = event.currentTarget;
  try {
    const response = await call(link.getAttribute("href"));
    if (!response.ok) throw new Error(((await response.json().catch(() => null)) || {}).error || `HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    const save = el("a", { href: url, download: "dispatches.csv" });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    toast(tr("errorLoading", { message: error.message }));
  }
}

// ---- audit -------------------------------------------------------------------------------
const short = (v) => (typeof v === "string" ? v : JSON.stringify(v));

// One line a person reads first: what changed; the whole record stays one click away.
function auditSummary(d) {
  if (d.before && d.after) {
    const changed = Object.keys(d.after).filter((k) => k !== "activated_at" && short(d.before[k]) !== short(d.after[k]));
    const parts = changed.map((k) => `${k}: ${short(d.before[k])} → ${short(d.after[k])}`);
    if (d.secret_replaced) parts.push("secret replaced");
    return parts.join("; ") || "—";
  }
  const rule = d.after || d.before;
  if (rule) return `${rule.name} · ${rule.url}`;
  return Object.entries(d).map(([k, v]) => `${k}: ${short(v)}`).join("; ");
}
async function loadAudit() {
  showState("#audit-state", tr("loading"), "loading");
  try {
    const page = await api(`/api/v1/audit?${query(scoped({ limit: 200 }))}`);
    if (page.items.length) hideState("#audit-state"); else showState("#audit-state", tr("auditEmpty"), "empty");
    $("#audit-rows").replaceChildren(...page.items.map((a) => el("tr", { "data-action": a.action },
      el("td", { "data-label": tr("at"), text: when(a.at) }), el("td", { "data-label": tr("actor"), text: a.actor }),
      el("td", { "data-label": tr("action"), text: a.action }), el("td", { "data-label": tr("target"), text: a.target }),
      el("td", { "data-label": tr("details") }, el("details", {}, el("summary", { text: auditSummary(a.details) }),
        el("pre", { class: "details", text: JSON.stringify(a.details, null, 1) }))))));
  } catch (error) {
    $("#audit-rows").replaceChildren();
    showState("#audit-state", tr("errorLoading", { message: error.message }), "error", loadAudit);
  }
}

// ---- rules -------------------------------------------------------------------------------
async function fetchRules() {
  state.rules = (await api(`/api/v1/rules?${query(scoped())}`)).items;
  return state.rules;
}

async function loadRules() {
  showState("#rules-state", tr("loading"), "loading");
  try {
    await fetchRules();
    if (state.rules.length) hideState("#rules-state"); else showState("#rules-state", tr("emptyRules"), "empty");
    $("#rule-rows").replaceChildren(...state.rules.map(ruleRow));
  } catch (error) {
    $("#rule-rows").replaceChildren();
    showState("#rules-state", tr("errorLoading", { message: error.message }), "error", loadRules);
  }
}

function ruleRow(rule) {
  const paused = rule.active && rule.paused;
  const why = paused ? tr("pausedBecause", { reason: rule.paused_reason || "" })
    : rule.deactivated_reason ? tr("deactivatedBecause", { reason: rule.deactivated_reason }) : null;
  const word = paused ? "paused" : rule.active ? "active" : "inactive";
  const status = el("span", { title: why, "data-testid": "rule-status", "data-state": word },
    el("span", { class: `dot ${paused ? "paused" : rule.active ? "success" : "inactive"}` }), tr(word));
  if (rule.max_per_second) status.append(" ", el("span", { class: "tag", "data-testid": "rule-rate", text: tr("ratePerSecond", { n: num(rule.max_per_second) }) }));
  if (paused) {
    const held = el("span", { class: "tag", "data-testid": "rule-held", text: tr("heldCount", { n: "…" }) });
    status.append(" ", held);
    api(`/api/v1/rules/${rule.id}/held`).then((h) => { held.textContent = tr("heldCount", { n: num(h.held) }); held.dataset.held = h.held; })
      .catch(() => { held.textContent = tr("heldCount", { n: "–" }); });
  }
  const actions = may("manage") ? el("td", {},
    el("button", { "data-testid": "rule-edit", onclick: () => openRule(rule.id), text: tr("edit") }), " ",
    el("button", { "data-testid": "rule-toggle", onclick: () => toggleRule(rule), text: tr(rule.active ? "deactivate" : "activate") }),
    ...(paused ? [" ",
      el("button", { "data-testid": "rule-release", onclick: () => releaseHeld(rule), text: tr("release") }), " ",
      el("button", { "data-testid": "rule-discard-held", onclick: () => discardHeld(rule), text: tr("discardHeld") })] : [])) : el("td");
  return el("tr", { "data-rule-id": rule.id },
    el("td", { "data-label": "ID", text: String(rule.id) }), el("td", { "data-label": tr("name"), text: rule.name }),
    el("td", { "data-label": tr("eventTypes"), text: rule.event_types.join(", ") }),
    el("td", { "data-label": tr("url"), class: "url", text: rule.url }), el("td", { "data-label": tr("status") }, status), actions);
}

const editable = (rule) => ({
  name: rule.name, event_types: rule.event_types, filters: rule.filters, url: rule.url,
  headers: rule.headers, active: rule.active, timeout_s: rule.timeout_s, max_attempts: rule.max_attempts,
  ordering: rule.ordering, supersede: rule.supersede, status_guard: rule.status_guard, paused: rule.paused,
  paused_reason: rule.paused_reason, release_rate: rule.release_rate, version: rule.version,
  max_per_second: rule.max_per_second,
});

async function releaseHeld(rule) {
  try {
    const r = await api(`/api/v1/rules/${rule.id}/release?version=${rule.version}`, { method: "POST" });
    toast(tr("releasing", { id: rule.id, n: num(r.held), rate: r.release_rate }));
  } catch (error) {
    toast(error.message);
  }
  loadRules();
}

async function discardHeld(rule) {
  const h = await api(`/api/v1/rules/${rule.id}/held`).catch(() => ({ held: "?" }));
  if (!confirm(tr("confirmDiscard", { n: h.held, id: rule.id }))) return;
  try {
    const r = await api(`/api/v1/rules/${rule.id}/discard-held`, { method: "POST" });
    toast(tr("discardedHeld", { n: num(r.discarded), id: rule.id }));
  } catch (error) {
    toast(error.message);
  }
  loadRules();
}

async function toggleRule(rule) {
  try {
    await api(`/api/v1/rules/${rule.id}`, { method: "PUT", body: JSON.stringify({ ...editable(rule), active: !rule.active }) });
    toast(tr("saved", { id: rule.id }));
  } catch (error) {
    toast(error.message);
  }
  loadRules();
}

function openRule(id) {
  const rule = state.rules.find((r) => r.id === id) || null;
  const form = $("#rule-form");
  clearErrors(form);
  form.dataset.ruleId = rule ? rule.id : "";
  form.dataset.version = rule ? rule.version : "";
  $("#rule-title").textContent = rule ? tr("editRule", { id: rule.id }) : tr("newRule");
  const f = form.elements;
  f.name.value = rule ? rule.name : "";
  f.event_types.value = rule ? rule.event_types.join(", ") : "*";
  f.url.value = rule ? rule.url : "";
  setFilterRows(rule ? rule.filters : {});
  f.headers.value = rule ? Object.entries(rule.headers).map(([k, v]) => `${k}: ${v}`).join("\n") : "";
  f.secret.value = "";
  $("#secret-hint").textContent = rule ? tr("secretKept", { masked: rule.secret }) : tr("secretNew");
  f.timeout_s.value = rule ? rule.timeout_s : 10;
  f.max_attempts.value = rule ? rule.max_attempts : 6;
  f.active.checked = rule ? rule.active : true;
  f.ordering.value = rule ? rule.ordering : "none";
  f.supersede.checked = rule ? rule.supersede : false;
  f.status_guard.value = rule ? rule.status_guard : "off";
  f.paused.checked = rule ? rule.paused : false;
  f.paused_reason.value = rule && rule.paused_reason ? rule.paused_reason : "";
  f.release_rate.value = rule ? rule.release_rate : 50;
  f.max_per_second.value = rule && rule.max_per_second ? rule.max_per_second : "";
  $("#rule-preview-result").hidden = $("#rule-test-result").hidden = true;
  $("#rule-test").hidden = !rule || !may("resend"); // a test needs a saved rule
  $("#rule-modal").showModal();
}

function linesOf(text, separator, field, errors) {
  const out = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(separator);
    if (at <= 0) { errors[field] = line; continue; }
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

// The rule form as an API body, or the lines it could not read (field -> line).
function ruleBody(form) {
  const f = form.elements;
  const bad = {};
  const filters = filterRowsBody(bad);
  const headers = linesOf(f.headers.value, ":", "headers", bad);
  if (bad.headers) bad.headers = `"${bad.headers}"?`;
  if (Object.keys(bad).length) return { bad };
  const body = {
    name: f.name.value.trim(), event_types: f.event_types.value.split(",").map((s) => s.trim()).filter(Boolean),
    filters, url: f.url.value.trim(), headers, active: f.active.checked,
    timeout_s: Number(f.timeout_s.value), max_attempts: Number(f.max_attempts.value),
    ordering: f.ordering.value, supersede: f.supersede.checked, status_guard: f.status_guard.value,
    paused: f.paused.checked,
    paused_reason: f.paused.checked && f.paused_reason.value.trim() ? f.paused_reason.value.trim() : null,
    release_rate: Number(f.release_rate.value),
    max_per_second: f.max_per_second.value.trim() ? Number(f.max_per_second.value) : null,
  };
  if (f.secret.value.trim()) body.secret = f.secret.value.trim();
  if (form.dataset.version) body.version = Number(form.dataset.version); // compare-and-set
  if (!form.dataset.ruleId && state.account) body.account_id = state.account; // a new rule of the chosen account
  return { body };
}

async function submitRule(event) {
  event.preventDefault();
  const form = $("#rule-form");
  clearErrors(form);
  const { body, bad } = ruleBody(form);
  if (bad) return showErrors(form, bad);
  const id = form.dataset.ruleId;
  try {
    const saved = await api(id ? `/api/v1/rules/${id}` : "/api/v1/rules", { method: id ? "PUT" : "POST", body: JSON.stringify(body) });
    $("#rule-modal").close();
    toast(id ? tr("saved", { id: saved.id }) : tr("secretCreated", { id: saved.id, secret: saved.secret }), id ? 4000 : 15000);
    if (location.hash.startsWith("#/rules/")) history.replaceState(null, "", "#/rules");
    loadRules();
  } catch (error) {
    showErrors(form, Object.keys(error.fields).length ? error.fields : { body: error.message });
  }
}

// ---- form errors, toasts, language ---------------------------------------------------------
function showErrors(form, fields) {
  for (const [path, message] of Object.entries(fields)) {
    const name = path.split(".")[0];
    const slot = $(`[data-error="${name}"]`, form) || $('[data-error="body"]', form);
    slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    const input = form.elements[name] || $(`#resend-${name.replace("_id", "").replace("_type", "")}`, form);
    if (input && input.classList) input.classList.add("invalid");
  }
}

function clearErrors(form) {
  $$("[data-error]", form).forEach((e) => { e.textContent = ""; });
  $$(".invalid", form).forEach((e) => e.classList.remove("invalid"));
}

let toastTimer = null;
function toast(text, ms = 4000) {
  const box = $("#toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, ms);
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  $("#lang").value = state.lang;
  $$("[data-i18n]").forEach((node) => { node.textContent = tr(node.dataset.i18n); });
  $$("[data-i18n-placeholder]").forEach((node) => { node.placeholder = tr(node.dataset.i18nPlaceholder); });
}

// ---- wiring --------------------------------------------------------------------------------
function wire() {
  $("#lang").addEventListener("change", (e) => {
    state.lang = e.target.value;
    localStorage.setItem("disparo.lang", state.lang);
    applyLanguage();
    route();
  });
  $("#range").addEventListener("change", () => { state.from = $("#from").value; state.to = $("#to").value; refresh(); });
  $("#range").addEventListener("submit", (e) => e.preventDefault());
  $("#search").addEventListener("submit", (e) => { e.preventDefault(); state.order = $("#order").value.trim(); refresh(); });
  $$(".tab").forEach((b) => b.addEventListener("click", () => { state.tab = b.dataset.tab; refresh(); }));
  $("#next").addEventListener("click", () => { state.cursors[state.page + 1] = state.nextCursor; state.page += 1; loadPage(); });
  $("#prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadPage(); });
  $("#send-manually").addEventListener("click", openResend);
  $("#resend-form").addEventListener("submit", submitResend);
  $("#new-rule").addEventListener("click", () => openRule(null));
  $("#rule-form").addEventListener("submit", submitRule);
  $$("[data-close]").forEach((b) => b.addEventListener("click", () => {
    const target = $(`#${b.dataset.close}`);
    if (target.close) target.close(); else target.hidden = true;
  }));
  $(".menu-toggle").addEventListener("click", () => $("#sidebar").classList.toggle("open"));
  $("#export").addEventListener("click", exportCsv);
  $("#add-filter").addEventListener("click", () => addFilterRow()); // rule_filters.js
  $("#live-toggle").addEventListener("click", () => toggleLive());
  $("#signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = e.target.elements.api_key.value.trim();
    if (!key) return showSignIn(tr("keyRequired"));
    e.target.elements.api_key.value = "";
    signIn(key);
  });
  $("#sign-out").addEventListener("click", () => signOut(""));
  $("#account-select").addEventListener("change", (e) => {
    state.account = e.target.value;
    state.order = state.reason = state.rule = "";
    writeHash();
    route();
  });
  window.addEventListener("hashchange", route);
}

// A portal link opens /portal/<id>#key=dsp_...: its key signs this tab in (a fragment never
// reaches a server or a log), then leaves the address bar.
function portalKey() {
  if (!location.pathname.startsWith("/portal/")) return "";
  const key = new URLSearchParams(location.hash.slice(1)).get("key") || "";
  if (key) history.replaceState(null, "", location.pathname);
  return key;
}

wire();
applyLanguage();
state.key = portalKey() || state.key;
if (state.key) signIn(state.key); else showSignIn("");
