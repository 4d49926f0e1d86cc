// The history card of the operator desktop: past calls searched by number or words (Enter), newest first, each
// opened (Enter or click) with its transcript, ticket and recording (the line being heard marked as it plays); and
// the call card's repeat-caller badge: the number's
// earlier calls in the last 30 days, whoever took them. Listens to desktop.js's "desk:call" event.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const api = (...args) => window.desktop.api(...args);
  const REASONS = {
    completed: "正常结束",
    caller_hangup: "市民挂断",
    operator_hangup: "坐席挂断",
    supervisor_hangup: "班长挂断",
    transferred: "已转接",
    asterisk_lost: "线路中断",
    gateway_shutdown: "系统停止",
    error: "异常",
  };
  const SPEAKERS = { caller: "市民", operator: "坐席", interpreter: "翻译" };
  const when = (iso) => (iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : "—");

  function say(text, kind = "") {
    const node = $("history-message");
    node.textContent = text;
    node.className = `message ${kind}`;
  }

  function describe(call) {
    const place = call.place ? [call.place.district, call.place.town].filter(Boolean).join(" ") : "地点不详";
    const ticket = call.ticket ? call.ticket.category || call.ticket.category_code : "未建工单";
    const reason = REASONS[call.reason] || call.reason || "—";
    return `${when(call.started_at)} · ${call.caller_number || "—"} · ${place} · ${ticket} · ${reason}`;
  }

  async function search(event) {
    event.preventDefault();
    const text = $("history-search").value.trim();
    const params = new URLSearchParams();
    if (/^[0-9+*#]{3,32}$/.test(text)) params.set("number", text);
    else if (text) params.set("q", text);
    const list = $("history-list");
    list.replaceChildren();
    $("history-detail").hidden = true;
    let page;
    try {
      page = await api("GET", `/api/history?${params}`);
    } catch (error) {
      say(`查询失败: ${error.message}`, "error");
      return;
    }
    say(page.calls.length ? `${page.calls.length} 条记录 (calls)` : "没有记录 (no calls)");
    for (const call of page.calls) {
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: describe(call) });
      button.className = "link-button";
      button.dataset.callId = call.call_id;
      button.addEventListener("click", () => open(call.call_id));
      const item = document.createElement("li");
      item.append(button);
      list.append(item);
    }
  }

  async function open(callId) {
    let record;
    try {
      record = await api("GET", `/api/history/${encodeURIComponent(callId)}`);
    } catch (error) {
      say(`打开失败: ${error.message}`, "error");
      return;
    }
    const items = [describe(record)];
    if (record.ticket) items.push(`工单：${record.ticket.category || "—"}｜${record.ticket.summary || ""}`);
    const detail = $("history-detail");
    detail.replaceChildren(...items.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
    for (const line of record.transcript) {
      const item = Object.assign(document.createElement("li"), {
        textContent: `${SPEAKERS[line.speaker] || line.speaker}：${line.text}`,
      });
      item.dataset.startMs = String(line.start_ms);
      detail.append(item);
    }
    detail.dataset.callId = callId;
    detail.hidden = false;
    await loadRecording(callId, record.recording_seconds);
  }

  // The recording comes with the operator's token (an <audio src> could not send it), as a blob the page plays;
  // the transcript line being heard is marked as it plays.
  async function loadRecording(callId, seconds) {
    const audio = $("history-audio");
    if (audio.src) URL.revokeObjectURL(audio.src);
    audio.removeAttribute("src");
    audio.hidden = true;
    if (!seconds) return;
    const headers = { Authorization: `Bearer ${window.desktop.state.token}` };
    const res = await fetch(`/api/history/${encodeURIComponent(callId)}/recording`, { headers });
    if (!res.ok) {
      say(`录音无法播放 (recording unavailable: ${res.status})`, "error");
      return;
    }
    audio.src = URL.createObjectURL(await res.blob());
    audio.hidden = false;
  }

  function follow() {
    const now = $("history-audio").currentTime * 1000;
    let current = null;
    for (const item of $("history-detail").querySelectorAll("li[data-start-ms]")) {
      item.classList.remove("playing");
      if (Number(item.dataset.startMs) <= now) current = item;
    }
    current?.classList.add("playing");
  }

  async function onCall(event) {
    const { call_id: callId, status } = event.detail;
    const badge = $("call-repeat");
    if (status !== "begun" || !callId) {
      badge.hidden = true;
      return;
    }
    try {
      const history = await api("GET", `/api/calls/${encodeURIComponent(callId)}/caller-history`);
      badge.hidden = history.earlier_calls === 0;
      badge.textContent = `30天内来电 ${history.earlier_calls} 次 (repeat caller)`;
      badge.title = history.calls.map(describe).join("\n");
    } catch {
      badge.hidden = true;
    }
  }

  function init() {
    $("history-form").addEventListener("submit", search);
    $("history-audio").addEventListener("timeupdate", follow);
    document.addEventListener("desk:call", onCall);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
