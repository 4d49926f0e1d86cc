// The supervisors' wallboard: callers waiting per queue, today's figures, the calls an alert word flagged, and
// each operator's state and call; refreshed every two seconds while a supervisor (or an admin) is logged in.
// On an operator's call the supervisor can listen, whisper or barge in: the gateway rings the supervisor's own
// phone into the call, and pressing another of the three changes the mode on the same phone.
// Starts on desktop.js's "desk:overseer" event and stops on "desk:logout".
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const api = (...args) => window.desktop.api(...args);
  const PRESENCE = { available: "空闲", ringing: "振铃", on_call: "通话中", wrap_up: "整理", away: "离开" };
  const MODES = { listen: "监听 Listen", whisper: "耳语 Whisper", barge: "强插 Barge" };
  const MODE_NAMES = { listen: "监听", whisper: "耳语", barge: "强插" };
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

  // Rows are updated in place (not rebuilt) so that a focused button keeps its focus across refreshes.
  function operatorRow(id) {
    const row = document.createElement("tr");
    row.dataset.key = id;
    for (let i = 0; i < 6; i += 1) row.append(document.createElement("td"));
    const actions = document.createElement("td");
    actions.className = "wb-actions";
    for (const [mode, label] of [...Object.entries(MODES), ["leave", "退出 Leave"]]) {
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: label });
      button.dataset.mode = mode;
      button.setAttribute("aria-label", `${label} ${id}`);
      button.addEventListener("click", () => monitor(row, mode));
      actions.append(button);
    }
    row.append(actions);
    return row;
  }

  function operatorRows(operators) {
    const body = $("wb-operators").querySelector("tbody");
    const existing = new Map([...body.children].map((row) => [row.dataset.key, row]));
    const me = window.desktop.state.user;
    const wanted = operators.map((op) => {
      const row = existing.get(op.id) || operatorRow(op.id);
      const monitors = Object.entries(op.monitors || {});
      const texts = [
        op.id,
        PRESENCE[op.presence] || op.presence,
        op.phone_registered === false ? "未注册" : "在线",
        op.caller_number || "—",
        clock(op.call_s),
        monitors.map(([who, mode]) => `${who} ${MODE_NAMES[mode] || mode}`).join("、") || "—",
      ];
      texts.forEach((text, i) => {
        if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
      });
      row.dataset.callId = op.call_id || "";
      const mine = (op.monitors || {})[me];
      for (const button of row.cells[6].querySelectorAll("button")) {
        const mode = button.dataset.mode;
        button.hidden = !op.call_id || (mode === "leave" && !mine);
        button.setAttribute("aria-pressed", String(mode === mine));
      }
      return row;
    });
    const same = wanted.length === body.children.length && wanted.every((row, i) => body.children[i] === row);
    if (!same) body.replaceChildren(...wanted);
  }

  async function monitor(row, mode) {
    const callId = row.dataset.callId;
    if (!callId) return;
    const path = `/api/supervisor/calls/${encodeURIComponent(callId)}/monitor`;
    $("wb-message").textContent = mode === "leave" ? "" : `正在呼叫您的话机… (ringing your phone for ${row.dataset.key})`;
    try {
      await (mode === "leave" ? api("DELETE", path) : api("POST", path, { mode }));
      $("wb-message").textContent = mode === "leave" ? "已退出 (left the call)" : `${MODES[mode]}：${row.dataset.key}`;
    } catch (error) {
      $("wb-message").textContent = `操作失败 (failed): ${error.message}`;
    }
    await refresh();
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
    operatorRows(board.operators);
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
