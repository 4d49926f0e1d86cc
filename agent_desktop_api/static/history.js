// The history card of the operator desktop: past calls searched by number or words (Enter), newest first, each
// opened (Enter or click) with its transcript and ticket; and the call card's repeat-caller badge: the number's
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
    const texts = [describe(record)];
    if (record.ticket) texts.push(`工单：${record.ticket.category || "—"}｜${record.ticket.summary || ""}`);
    for (const line of record.transcript) texts.push(`${SPEAKERS[line.speaker] || line.speaker}：${line.text}`);
    const detail = $("history-detail");
    detail.replaceChildren(...texts.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
    detail.dataset.callId = callId;
    detail.hidden = false;
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
    document.addEventListener("desk:call", onCall);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
