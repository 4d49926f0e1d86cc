// The callbacks card of the operator desktop: callers promised a call back (they waited as long as the queue
// allows), the longest waiting first. "回电 Call back" takes one (nobody else is offered it meanwhile) and shows
// the number to dial; then the operator says how it went. Starts on desktop.js's "desk:operator" event.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const api = (...args) => window.desktop.api(...args);
  const REFRESH_MS = 10_000;
  const OUTCOMES = [
    ["reached", "已回电", "Reached"],
    ["no_answer", "无人接听", "No answer"],
    ["wrong_number", "号码错误", "Wrong number"],
  ];
  const LANGUAGES = { zh: "普通话", en: "English", fr: "Français", de: "Deutsch", ru: "Русский", es: "Español",
    ar: "العربية", ja: "日本語", ko: "한국어" };
  let timer = null;

  function say(text, kind = "") {
    const node = $("callbacks-message");
    node.textContent = text;
    node.className = `message ${kind}`;
  }

  const minutes = (seconds) => `${Math.floor(seconds / 60)}分${Math.round(seconds % 60)}秒`;
  const clock = (iso) => new Date(iso).toLocaleTimeString("zh-CN", { hour12: false });

  function button(label, name, action) {
    const node = Object.assign(document.createElement("button"), { type: "button", textContent: label });
    node.setAttribute("aria-label", name);
    node.addEventListener("click", action);
    return node;
  }

  function row(callback) {
    const me = window.desktop.state.user;
    const item = document.createElement("li");
    item.dataset.id = String(callback.id);
    const number = callback.caller_number || "号码不详";
    const tried = callback.attempts ? ` · 已拨 ${callback.attempts} 次未接通` : "";
    const text = `${number} · ${LANGUAGES[callback.language] || callback.language || "—"} · ` +
      `等候 ${minutes(callback.waited_s)} · ${clock(callback.requested_at)}${tried}`;
    item.append(Object.assign(document.createElement("span"), { textContent: text }));
    if (callback.claimed_by === me) {
      item.classList.add("mine");
      item.append(Object.assign(document.createElement("strong"), { textContent: ` 请拨打 ${number} ` }));
      for (const [outcome, zh, en] of OUTCOMES) {
        item.append(button(`${zh} ${en}`, `${zh} ${en} ${number}`, () => finish(callback, outcome, zh)));
      }
    } else if (callback.claimed_by) {
      item.append(Object.assign(document.createElement("span"), { textContent: ` ${callback.claimed_by} 回电中` }));
    } else {
      item.append(button("回电 Call back", `回电 Call back ${number}`, () => claim(callback)));
    }
    return item;
  }

  async function refresh() {
    let answer;
    try {
      answer = await api("GET", "/api/callbacks");
    } catch (error) {
      say(`待回电列表无法刷新: ${error.message}`, "error");
      return;
    }
    const list = $("callbacks-list");
    const focused = document.activeElement?.getAttribute("aria-label");
    list.replaceChildren(...answer.callbacks.map(row));
    $("callbacks-count").textContent = answer.callbacks.length ? String(answer.callbacks.length) : "";
    $("callbacks-empty").hidden = answer.callbacks.length > 0;
    if (focused) [...list.querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === focused)?.focus();
  }

  async function claim(callback) {
    try {
      await api("POST", `/api/callbacks/${callback.id}/claim`);
      say(`请拨打 ${callback.caller_number} (call them back now)`, "ok");
    } catch (error) {
      say(`无法回电: ${error.message}`, "error");
    }
    await refresh();
    $("callbacks-list").querySelector("li.mine button")?.focus();
  }

  async function finish(callback, outcome, zh) {
    try {
      await api("POST", `/api/callbacks/${callback.id}/done`, { outcome });
      say(`${callback.caller_number}：${zh}`, "ok");
    } catch (error) {
      say(`未能记录: ${error.message}`, "error");
    }
    await refresh();
  }

  function start() {
    clearInterval(timer);
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }

  function stop() {
    clearInterval(timer);
    timer = null;
    $("callbacks-list").replaceChildren();
  }

  document.addEventListener("desk:operator", start);
  document.addEventListener("desk:logout", stop);
})();
