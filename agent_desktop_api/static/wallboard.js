// The supervisors' wallboard: callers waiting per queue, today's figures, the calls an alert word flagged, and
// each operator's state and call; refreshed every two seconds while a supervisor (or an admin) is logged in.
// Starts on desktop.js's "desk:overseer" event and stops on "desk:logout".
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const api = (...args) => window.desktop.api(...args);
  const PRESENCE = { available: "空闲", ringing: "振铃", on_call: "通话中", wrap_up: "整理", away: "离开" };
  const REFRESH_MS = 2000;
  let timer = null;

  const cell = (text) => Object.assign(document.createElement("td"), { textContent: text });
  const clock = (seconds) =>
    seconds == null ? "—" : `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;

  function rows(tableId, lines) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren(
      ...lines.map(([key, cells]) => {
        const row = document.createElement("tr");
        row.dataset.key = key;
        row.append(...cells.map(cell));
        return row;
      }),
    );
  }

  function render(board) {
    rows("wb-queues", board.queues.map((q) => [q.queue, [q.queue, String(q.waiting), clock(q.longest_wait_s)]]));
    $("wb-queues-empty").hidden = board.queues.length > 0;
    const today = board.today;
    $("wb-calls").textContent = String(today.calls);
    $("wb-answered").textContent = String(today.answered);
    $("wb-abandoned").textContent = String(today.abandoned);
    $("wb-service-level").textContent =
      today.service_level == null ? "—" : `${Math.round(today.service_level * 100)}%`;
    rows(
      "wb-operators",
      board.operators.map((op) => [
        op.id,
        [
          op.id,
          PRESENCE[op.presence] || op.presence,
          op.phone_registered === false ? "未注册" : "在线",
          op.caller_number || "—",
          clock(op.call_s),
        ],
      ]),
    );
    const alerts = $("wb-alerts");
    alerts.replaceChildren(
      ...board.alerts.map((alert) => {
        const item = document.createElement("li");
        item.dataset.callId = alert.call_id;
        if (alert.ended_at) item.dataset.ended = "true";
        const when = new Date(alert.at).toLocaleTimeString("zh-CN", { hour12: false });
        item.textContent = `${when} ⚠ ${alert.words.join("、")} · ${alert.caller_number || "—"} · `
          + `${alert.operator_id || "排队中"}${alert.ended_at ? " · 已结束" : ""}：${alert.text}`;
        return item;
      }),
    );
    $("wb-alerts-empty").hidden = board.alerts.length > 0;
  }

  async function refresh() {
    try {
      render(await api("GET", "/api/supervisor/wallboard"));
      $("wb-message").textContent = "";
    } catch (error) {
      $("wb-message").textContent = `刷新失败 (refresh failed): ${error.message}`;
    }
  }

  function start() {
    $("wallboard").hidden = false;
    clearInterval(timer);
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }

  function stop() {
    clearInterval(timer);
    timer = null;
    $("wallboard").hidden = true;
  }

  document.addEventListener("desk:overseer", start);
  document.addEventListener("desk:logout", stop);
})();
