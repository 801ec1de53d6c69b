// The live history: while a list tab is open, new attempt rows arrive on their own (Server-
// Sent Events from /api/v1/dispatches/stream, read with fetch so the key goes in a header).
// New rows go on top of the first page, the counts follow; a pause control stops it; a lost
// stream (an API restart) reconnects and reloads the list, and rows already shown stay once.
// Uses app.js's helpers.
"use strict";

const LIVE_RETRY_MS = 2000;
const LIVE_MAX_ROWS = 500; // rows kept on the first page while live; the pager has the rest
const live = { paused: false, controller: null, connected: false, token: 0, retry: null, summary: null, received: [], watches: [] };

// Live only where new rows can belong: a list tab whose period runs to today.
const liveWanted = () => state.me && state.tab !== "undelivered" && state.tab !== "sla" && state.to >= isoDay(new Date())
  && !$("#webhooks-view").hidden;

function stopLive() {
  live.token += 1;
  clearTimeout(live.retry);
  if (live.controller) live.controller.abort();
  live.controller = null;
  live.connected = false;
  renderLive();
}

function startLive() {
  stopLive();
  if (live.paused || !liveWanted()) return;
  const token = live.token;
  live.received = [];
  const controller = new AbortController();
  live.controller = controller;
  renderLive();
  readStream(token, controller).catch(() => {}).finally(() => {
    if (token !== live.token) return; // stopped or replaced on purpose
    live.controller = null;
    live.connected = false;
    renderLive(tr("liveReconnecting"));
    live.retry = setTimeout(() => { if (token === live.token) refresh(); }, LIVE_RETRY_MS);
  });
}

async function readStream(token, controller) {
  const params = listParams();
  const response = await call(`/api/v1/dispatches/stream?${query(params)}`, { signal: controller.signal });
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new Error((body && body.error) || `HTTP ${response.status}`);
  }
  if (token !== live.token) return;
  live.connected = true;
  renderLive();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done || token !== live.token) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const message = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      onMessage(message, token);
    }
  }
}

function onMessage(message, token) {
  const lines = message.split("\n");
  if (lines.some((l) => l === "event: dropped")) throw new Error("dropped");
  for (const line of lines) {
    if (line.startsWith("data: ") && token === live.token && !live.paused) addLiveRow(JSON.parse(line.slice(6)));
  }
}

function addLiveRow(item) {
  live.received = [item, ...live.received].slice(0, LIVE_MAX_ROWS);
  for (const watch of live.watches.filter((w) => watched(w, item))) {
    watch.seen.add(item.dispatch_id);
    if (watch.seen.size >= watch.ids.size) finishWatch(watch);
  }
  if (state.page !== 0 || $(`#rows tr[data-attempt-id="${item.attempt_id}"]`)) return;
  state.fresh.add(item.attempt_id);
  hideState("#list-state");
  $("#rows").prepend(rowOf(item));
  const rows = $$("#rows tr");
  rows.slice(LIVE_MAX_ROWS).forEach((r) => r.remove());
  countLiveRow(item);
}

// A list loaded while rows were arriving may not hold them yet: put them back on top.
function mergeLive() {
  for (const item of [...live.received].reverse()) {
    if (!$(`#rows tr[data-attempt-id="${item.attempt_id}"]`)) $("#rows").prepend(rowOf(item));
  }
  if (live.received.length) hideState("#list-state");
}

// The tab counts follow the rows that arrive: totals as the summary counts them.
function countLiveRow(item) {
  const s = live.summary;
  if (!s) return;
  if (item.status === "success" || item.status === "failure") s.total += 1;
  if (item.status === "failure") s.failed += 1;
  if (item.status === "held") s.held += 1;
  if (item.status === "superseded") s.superseded += 1;
  if (item.status === "regressed") s.regressed += 1;
  s.failure_rate = s.total ? s.failed / s.total : 0;
  showSummary(s);
}

function renderLive(problem) {
  const on = live.connected;
  const box = $("#live-state");
  box.dataset.state = live.paused ? "paused" : on ? "live" : "off";
  box.textContent = problem || tr(live.paused ? "livePaused" : on ? "liveOn" : "liveOff");
  $("#live-toggle").textContent = tr(live.paused ? "liveResume" : "livePause");
  $("#live-toggle").hidden = !liveWanted();
}

function toggleLive() {
  live.paused = !live.paused;
  if (live.paused) stopLive();
  else refresh(); // what arrived while paused comes with the reloaded list
}
