// The ticket card of the operator desktop: the call's draft as the ticket assistant fills it, the operator's
// edits (saved as each field is left), category suggestions with the words behind them, submit, and the
// caller number's earlier tickets. Listens to desktop.js's "desk:call" and "desk:message" events.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const FIELDS = ["response", "dispatch_unit", "district", "town", "detail", "caller_name", "callback_number", "summary"];
  const STATUS = { open: "草稿 draft", submitted: "已提交 submitted" };
  // `typing`: fields the operator has changed but not left yet; a redraw leaves those alone.
  const ticket = { callId: null, data: null, categories: [], byLabel: new Map(), typing: new Set() };
  window.desktop.ticket = ticket;
  const api = (...args) => window.desktop.api(...args);

  const label = (choice) => `${choice.code} ${choice.path.join(" / ")}`;
  const url = () => `/api/calls/${encodeURIComponent(ticket.callId)}/ticket`;

  function say(text, kind = "") {
    const node = $("ticket-message");
    node.textContent = text;
    node.className = `message ${kind}`;
  }

  async function loadCategories() {
    if (ticket.categories.length) return;
    try {
      ticket.categories = (await api("GET", "/api/ticket/categories")).categories;
    } catch {
      return;
    }
    const list = $("ticket-categories");
    for (const choice of ticket.categories) {
      ticket.byLabel.set(label(choice), choice);
      list.append(Object.assign(document.createElement("option"), { value: label(choice) }));
    }
  }

  function render() {
    const data = ticket.data;
    const open = Boolean(data) && data.status === "open";
    $("ticket-card").dataset.state = data ? data.status : "idle";
    $("ticket-state").textContent = data ? STATUS[data.status] || data.status : "";
    for (const name of FIELDS) {
      const input = $(`ticket-${name}`);
      if (!ticket.typing.has(name)) input.value = data?.fields[name] ?? "";
      input.disabled = !open;
    }
    const category = $("ticket-category");
    if (!ticket.typing.has("category")) {
      const code = data?.fields.category_code;
      const choice = ticket.categories.find((c) => c.code === code);
      category.value = choice ? label(choice) : code ? `${code} ${data.fields.category || ""}` : "";
    }
    category.disabled = !open;
    $("btn-ticket-submit").disabled = !open;
    const suggestions = $("ticket-suggestions");
    suggestions.replaceChildren();
    for (const guess of data?.categories || []) {
      const button = Object.assign(document.createElement("button"), {
        type: "button",
        textContent: `${guess.path[2]}（${guess.words.join("、")}）`,
        title: guess.path.join(" / "),
        disabled: !open,
      });
      button.setAttribute("aria-pressed", String(guess.code === data.fields.category_code));
      button.addEventListener("click", () => save({ category_code: guess.code }));
      suggestions.append(button);
    }
    const urgent = $("ticket-urgent");
    urgent.hidden = !data?.urgent_words?.length;
    urgent.textContent = urgent.hidden ? "" : `紧急 urgent: ${data.urgent_words.join("、")}`;
  }

  async function refresh() {
    if (!ticket.callId) return;
    try {
      ticket.data = await api("GET", url());
      render();
    } catch (error) {
      if (error.status !== 404) say(`工单读取失败: ${error.message}`, "error");
    }
  }

  async function save(changes) {
    if (!ticket.callId) return;
    try {
      ticket.data = await api("PATCH", url(), changes);
      render();
      say("已保存 saved", "ok");
    } catch (error) {
      say(`未保存: ${error.message}`, "error");
    }
  }

  function onFieldChange(name) {
    ticket.typing.delete(name);
    const value = $(`ticket-${name}`).value.trim();
    if ((ticket.data?.fields[name] ?? "") === value) return;
    save({ [name]: value || null });
  }

  function onCategoryChange() {
    ticket.typing.delete("category");
    const typed = $("ticket-category").value.trim();
    if (!typed) return;
    const choice = ticket.byLabel.get(typed) || ticket.categories.find((c) => typed.split(" ")[0] === c.code);
    if (!choice) return say("没有这个类别，请从列表中选择 (pick a category from the list)", "error");
    if (choice.code !== ticket.data?.fields.category_code) save({ category_code: choice.code });
  }

  async function submit(event) {
    event.preventDefault();
    if (!ticket.callId) return;
    try {
      ticket.data = await api("POST", url());
      render();
      say("工单已提交 ticket filed", "ok");
      loadHistory(ticket.callerNumber);
    } catch (error) {
      say(`未提交: ${error.message}`, "error");
    }
  }

  async function loadHistory(number) {
    const list = $("ticket-history");
    list.replaceChildren();
    $("ticket-repeat").hidden = true;
    if (!number) return;
    let rows;
    try {
      rows = (await api("GET", `/api/tickets?caller_number=${encodeURIComponent(number)}`)).tickets;
    } catch {
      return;
    }
    for (const row of rows) {
      const when = new Date(row.submitted_at).toLocaleString("zh-CN", { hour12: false });
      const item = document.createElement("li");
      item.dataset.callId = row.call_id;
      item.textContent = `${when} ${row.fields.category || "—"}：${row.fields.summary || ""}`;
      list.append(item);
    }
    const earlier = rows.filter((row) => row.call_id !== ticket.callId).length;
    $("ticket-repeat").hidden = earlier === 0;
    $("ticket-repeat").textContent = `重复来电 repeat caller ×${earlier}`;
  }

  function onCall(event) {
    const { call_id: callId, caller_number: number, status } = event.detail;
    if (status === "begun") {
      ticket.callId = callId;
      ticket.callerNumber = number;
      ticket.data = null;
      ticket.typing.clear();
      say("");
      render();
      loadCategories().then(refresh);
      loadHistory(number);
    } else if (status === "reset") {
      ticket.callId = null;
      ticket.data = null;
      render();
      $("ticket-history").replaceChildren();
    }
  }

  function onMessage(event) {
    const { msg, mine } = event.detail;
    if (msg.type === "ticket.draft" && mine) refresh();
  }

  function init() {
    for (const name of FIELDS) {
      $(`ticket-${name}`).addEventListener("input", () => ticket.typing.add(name));
      $(`ticket-${name}`).addEventListener("change", () => onFieldChange(name));
    }
    $("ticket-category").addEventListener("input", () => ticket.typing.add("category"));
    $("ticket-category").addEventListener("change", onCategoryChange);
    $("ticket-form").addEventListener("submit", submit);
    document.addEventListener("desk:call", onCall);
    document.addEventListener("desk:message", onMessage);
    render();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
