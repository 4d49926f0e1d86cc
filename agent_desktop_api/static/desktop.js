// 12345 operator desktop: login, presence, the current call, live transcript, address card with a district map,
// call controls. Plain browser JavaScript, no build step. Talks to the desktop API (REST + one WebSocket) only.
"use strict";

(() => {
  const LANGUAGES = {
    zh: "普通话 Mandarin", en: "英语 English", fr: "法语 French", de: "德语 German", ru: "俄语 Russian",
    es: "西班牙语 Spanish", ar: "阿拉伯语 Arabic", ja: "日语 Japanese", ko: "韩语 Korean", other: "其他语言 Other",
  };
  const QUEUES = { citizens: "市民诉求 citizens", enterprises: "企业诉求 enterprises" };
  const STEPS = { welcome: "欢迎语", language_menu: "语言菜单", service_menu: "服务菜单" };
  const SPEAKERS = { caller: "来电人", operator: "话务员", interpreter: "翻译" };
  const PRESENCE = {
    available: "空闲", away: "离开", wrap_up: "整理", on_call: "通话中", ringing: "振铃中",
  };
  const CALL_STATES = { idle: "等待来电", ringing: "振铃中 ringing", active: "通话中 active", ended: "已结束 ended" };
  const CONN_STATES = {
    connecting: "连接中…", connected: "已连接 live", reconnecting: "重连中 reconnecting", offline: "未连接 offline",
  };
  const INTERPRETER_STATES = { pending: "呼叫中", joined: "已加入", left: "已离开", failed: "未接通" };
  const LEVELS = { district: "区", town: "街道/乡镇", community: "社区/村" };
  const AUTH_CLOSE_CODES = new Set([1008, 4401, 4403]);
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 10000];

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    for (const child of children) node.append(child);
    return node;
  };

  const state = {
    token: sessionStorage.getItem("hotline.token"),
    user: sessionStorage.getItem("hotline.user"),
    me: null,
    lastSeq: 0,
    epoch: null, // the database the seqs come from (GET /api/me); a server on another one says "resync"
    call: null, // {call_id, caller_number, language, ivr_path, queue, interpreter, started_at, status}
    segments: new Map(), // segment_id -> <li>
    spans: new Map(), // segment_id -> address span {start, end, text, fixes: [{start, end, heard, name}]}
    address: null, // {event, selected, dirty}
    lastFinalSegment: null,
    transcriptDown: {}, // speaker -> the notice while that party's transcription is stopped
    ws: null,
    wsAttempt: 0,
    wsTimer: null,
    meTimer: null,
    conn: "offline",
  };
  // For debugging, the browser tests and the page's other scripts (ticket.js): they listen to "desk:message"
  // (every stream message, with whether it is about the current call) and "desk:call" (a call began or ended).
  window.desktop = { state, api: (...args) => api(...args) };
  const OVERSEERS = new Set(["supervisor", "admin"]);
  const announce = (name, detail) => document.dispatchEvent(new CustomEvent(name, { detail }));

  // ---- API ----

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || `HTTP ${status}`);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 401 && state.token && !path.startsWith("/api/auth/login")) {
      logout("登录已过期，请重新登录 (session expired)");
      throw new ApiError(401, "unauthorized");
    }
    if (!res.ok) {
      let detail = "";
      try {
        const data = await res.json();
        detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail ?? data);
      } catch {
        detail = res.statusText;
      }
      throw new ApiError(res.status, detail);
    }
    if (res.status === 204 || res.headers.get("content-length") === "0") return null;
    return (res.headers.get("content-type") || "").includes("json") ? res.json() : res.text();
  }

  // ---- login / logout ----

  async function onLogin(event) {
    event.preventDefault();
    const error = $("login-error");
    error.hidden = true;
    $("login-submit").disabled = true;
    try {
      const data = await api("POST", "/api/auth/login", {
        username: $("login-username").value.trim(),
        password: $("login-password").value,
      });
      state.token = data.token;
      state.user = data.user;
      sessionStorage.setItem("hotline.token", data.token);
      sessionStorage.setItem("hotline.user", data.user);
      $("login-password").value = "";
      await enterDesk();
    } catch (exc) {
      error.textContent = exc.status === 401 ? "用户名或密码错误 (wrong user name or password)"
        : `登录失败 (login failed): ${exc.message}`;
      error.hidden = false;
    } finally {
      $("login-submit").disabled = false;
    }
  }

  function logout(message) {
    const token = state.token;
    state.token = null;
    clearInterval(state.meTimer);
    sessionStorage.removeItem("hotline.token");
    sessionStorage.removeItem("hotline.user");
    if (token) {
      fetch("/api/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
    }
    closeSocket();
    resetCall();
    announce("desk:logout", {});
    document.querySelector("main.desk").hidden = false;
    $("presence").hidden = false;
    $("conn-state").hidden = false;
    $("desk-view").hidden = true;
    $("login-view").hidden = false;
    const error = $("login-error");
    error.textContent = message || "";
    error.hidden = !message;
  }

  async function enterDesk() {
    $("login-view").hidden = true;
    $("desk-view").hidden = false;
    $("me-name").textContent = state.user || "";
    state.lastSeq = 0; // a new page replays this operator's stream: the current call's events rebuild the desk
    await refreshMe();
    if (OVERSEERS.has(state.me?.role)) {
      // A supervisor (or an admin) watches every call: the wallboard instead of one operator's desk.
      document.querySelector("main.desk").hidden = true;
      $("presence").hidden = true;
      $("conn-state").hidden = true; // no operator's event stream to be connected to
      announce("desk:overseer", { role: state.me.role });
      return;
    }
    initMap();
    state.epoch = state.me?.epoch || null;
    clearInterval(state.meTimer);
    state.meTimer = setInterval(() => state.token && refreshMe(), 10_000); // the phone's registration can change
    await loadCurrentCall();
    connect();
    announce("desk:operator", { user: state.user });
  }

  // ---- presence ----

  async function refreshMe() {
    try {
      state.me = await api("GET", "/api/me");
    } catch {
      return;
    }
    renderPresence();
    // A phone that is not registered gets no calls however the desk's status is set: say so.
    $("phone-state").hidden = state.me?.phone_registered !== false;
  }

  function renderPresence() {
    const presence = state.me?.presence || "";
    for (const button of document.querySelectorAll("#presence button")) {
      button.setAttribute("aria-checked", String(button.dataset.presence === presence));
    }
    const label = PRESENCE[presence] || presence;
    $("presence-current").textContent = ["available", "away", "wrap_up"].includes(presence) ? "" : label;
    $("presence").dataset.presence = presence;
  }

  async function setPresence(presence) {
    try {
      await api("PUT", "/api/me/presence", { presence });
      await refreshMe();
    } catch (exc) {
      showMessage(`状态切换失败 (presence): ${exc.message}`, "error");
    }
  }

  // ---- the current call ----

  async function loadCurrentCall() {
    let current;
    try {
      current = await api("GET", "/api/calls/current");
    } catch {
      return;
    }
    if (!current || !current.call_id) return;
    // CurrentCall: state offered|talking, interpreter (bool, in the call now), interpreter_language
    beginCall(current.call_id, {
      ...current,
      interpreter: current.interpreter_language
        ? { language: current.interpreter_language, state: current.interpreter ? "joined" : "pending" } : null,
      started_at: current.answered_at || current.started_at,
      status: current.state === "offered" ? "ringing" : "active",
    });
    try {
      const history = await api("GET", `/api/calls/${encodeURIComponent(current.call_id)}/transcript`);
      for (const segment of history?.segments || []) upsertSegment(segment, true);
    } catch {
      // the live stream fills it in
    }
  }

  function beginCall(callId, fields) {
    if (!state.call || state.call.call_id !== callId) {
      resetCall();
      state.call = { call_id: callId, interpreter: null, started_at: null };
      announce("desk:call", { call_id: callId, caller_number: fields.caller_number || null, status: "begun" });
    }
    const call = state.call;
    for (const key of ["caller_number", "language", "ivr_path", "queue", "started_at", "operator_id"]) {
      if (fields[key] !== undefined && fields[key] !== null) call[key] = fields[key];
    }
    const interpreter = fields.interpreter ?? fields.interpreter_language;
    if (interpreter && !call.interpreter) {
      call.interpreter = typeof interpreter === "string" ? { language: interpreter, state: "pending" }
        : { language: interpreter.language, state: interpreter.state || "joined" };
    }
    if (fields.status) call.status = fields.status;
    if (call.status === "active" && !call.started_at) call.started_at = fields.ts || new Date().toISOString();
    renderCall();
  }

  function onAlert(msg) {
    // The caller said words a supervisor is told of at once: the operator sees them too, on the call, until it ends.
    const call = state.call;
    const words = new Set([...(call.alertWords || []), ...(msg.words || [])]);
    call.alertWords = [...words];
    const box = $("call-alert");
    box.textContent = `⚠ 紧急关键词 alert: ${call.alertWords.join("、")} — 已通知班长 (supervisors see it)`;
    box.title = msg.text || "";
    box.hidden = false;
  }

  function endCall(reason, ts) {
    if (!state.call) return;
    state.call.status = "ended";
    state.call.reason = reason;
    state.call.ended_at = (ts && Date.parse(ts)) || Date.now();
    renderCall();
    refreshMe();
    setTimeout(refreshMe, 1500); // the pool leaves on_call just after the call's end
  }

  function resetCall() {
    state.call = null;
    state.segments.clear();
    state.spans.clear();
    state.address = null;
    state.lastFinalSegment = null;
    $("transcript").replaceChildren();
    $("transcript-empty").hidden = false;
    state.transcriptDown = {};
    $("transcript-status").hidden = true;
    $("call-alert").hidden = true;
    $("call-alert").textContent = "";
    fillForm({}); // the last caller's place must never be confirmed for the next one
    $("addr-search").value = "";
    showMessage("");
    renderAddress();
    clearMapPlace();
    renderCall();
    announce("desk:call", { call_id: null, status: "reset" });
  }

  function renderCall() {
    const call = state.call;
    const status = call ? call.status || "ringing" : "idle";
    $("call-card").dataset.state = status;
    $("call-card").dataset.callId = call?.call_id || "";
    let statusText = CALL_STATES[status] || status;
    if (status === "ended" && call.reason) statusText += ` (${call.reason})`;
    $("call-status").textContent = statusText;
    $("call-caller").textContent = call?.caller_number || "—";
    $("call-language").textContent = call?.language ? LANGUAGES[call.language] || call.language : "—";
    renderPath(call?.ivr_path);
    $("call-queue").textContent = call?.queue ? QUEUES[call.queue] || call.queue : "—";
    const badge = $("call-interpreter");
    if (call?.interpreter) {
      const lang = LANGUAGES[call.interpreter.language] || call.interpreter.language;
      badge.textContent = `翻译 Interpreter · ${lang} · ${INTERPRETER_STATES[call.interpreter.state] || call.interpreter.state}`;
      badge.dataset.state = call.interpreter.state;
      badge.hidden = false;
    } else {
      badge.hidden = true;
    }
    renderDuration();
    const live = status === "active";
    $("btn-hangup").disabled = !(live || status === "ringing");
    for (const id of ["transfer-target", "btn-transfer", "interpreter-language", "btn-interpreter-add"]) {
      $(id).disabled = !live;
    }
    $("btn-interpreter-drop").disabled = !(live && ["pending", "joined"].includes(call.interpreter?.state));
    $("address-form").hidden = !call;
    updateConfirmButton();
  }

  function renderPath(path) {
    const node = $("call-path");
    node.replaceChildren();
    if (!path || !path.length) {
      node.textContent = "—";
      node.dataset.path = "";
      return;
    }
    node.dataset.path = path.join(" > ");
    path.forEach((step, index) => {
      if (index) node.append(" › ");
      node.append(el("span", { className: "step", title: step, textContent: stepLabel(step) }));
    });
  }

  // "language_menu:1" -> "语言菜单 1", "set_zh" -> "语言 普通话", "queue_citizens" -> "队列 市民诉求"
  function stepLabel(step) {
    const [, base, rest] = /^([^:[]*)(.*)$/.exec(step);
    const tail = rest.replace(/^:/, " ");
    if (STEPS[base]) return STEPS[base] + tail;
    const [, kind, arg] = /^(set|queue)_(.+)$/.exec(base) || [];
    const name = (names) => (names[arg] || LANGUAGES[arg] || arg).split(" ")[0];
    if (kind === "set") return `语言 ${name(LANGUAGES)}${tail}`;
    if (kind === "queue") return `队列 ${name(QUEUES)}${tail}`;
    return step;
  }

  function renderDuration() {
    const call = state.call;
    const node = $("call-duration");
    if (!call?.started_at) {
      node.textContent = "—";
      return;
    }
    const end = call.status === "ended" ? call.ended_at || (call.ended_at = Date.now()) : Date.now();
    const seconds = Math.max(0, Math.round((end - Date.parse(call.started_at)) / 1000));
    node.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  }

  // ---- call controls ----

  function showMessage(text, kind = "") {
    const node = $("control-message");
    node.textContent = text;
    node.className = `message ${kind}`;
  }

  async function control(method, suffix, body, done) {
    if (!state.call) return;
    try {
      await api(method, `/api/calls/${encodeURIComponent(state.call.call_id)}/${suffix}`, body);
      showMessage(done, "ok");
    } catch (exc) {
      showMessage(`操作失败 (failed): ${exc.message}`, "error");
    }
  }

  // ---- transcript ----

  function upsertSegment(msg, final) {
    const id = msg.segment_id;
    if (!id) return;
    let li = state.segments.get(id);
    if (li && li.dataset.final === "1") return; // finals never change
    const box = $("transcript");
    const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    if (!li) {
      li = el("li", {}, el("span", { className: "who" }), el("span", { className: "when" }), el("span", { className: "text" }));
      li.dataset.segmentId = id;
      li.dataset.startMs = String(msg.start_ms ?? Number.MAX_SAFE_INTEGER);
      insertByStart(box, li);
      state.segments.set(id, li);
      $("transcript-empty").hidden = true;
    }
    const speaker = SPEAKERS[msg.speaker] ? msg.speaker : "caller";
    li.className = `${speaker} ${final ? "final" : "partial"}`;
    li.dataset.final = final ? "1" : "0";
    li.dataset.speaker = speaker;
    li.querySelector(".who").textContent = SPEAKERS[speaker];
    li.querySelector(".when").textContent = msg.start_ms != null ? clock(msg.start_ms) : "";
    li.dataset.text = msg.text || "";
    renderSegmentText(li);
    if (final && speaker === "caller") state.lastFinalSegment = id;
    if (stick) box.scrollTop = box.scrollHeight;
    updateConfirmButton();
  }

  function showGap(msg) {
    // Audio of this party that was not transcribed: the operator must know the transcript has a hole there.
    const id = msg.segment_id;
    const shown = id && state.segments.get(id);
    if (!id || (shown && shown.dataset.final === "1")) return;
    if (shown) shown.remove(); // the partial of an utterance that could not be decoded gives way to the gap
    const speaker = SPEAKERS[msg.speaker] ? msg.speaker : "caller";
    const span = msg.end_ms != null ? `${clock(msg.start_ms)}–${clock(msg.end_ms)}` : clock(msg.start_ms);
    const li = el(
      "li",
      { className: `${speaker} gap final` },
      el("span", { className: "who", textContent: SPEAKERS[speaker] }),
      el("span", { className: "when", textContent: msg.start_ms != null ? clock(msg.start_ms) : "" }),
      el("span", { className: "text", textContent: `〔此段未能转写 not transcribed ${span}〕` }),
    );
    li.dataset.segmentId = id;
    li.dataset.final = "1";
    li.dataset.speaker = speaker;
    li.dataset.startMs = String(msg.start_ms ?? Number.MAX_SAFE_INTEGER);
    li.title = msg.error || "";
    insertByStart($("transcript"), li);
    state.segments.set(id, li);
    $("transcript-empty").hidden = true;
  }

  function showTranscriptStatus(msg) {
    const box = $("transcript-status");
    const who = SPEAKERS[msg.speaker] || msg.speaker;
    if (msg.state === "resumed") delete state.transcriptDown[msg.speaker];
    else state.transcriptDown[msg.speaker] = msg.state === "queued"
      ? `${who}：转写排队中 (transcription queued: ${msg.reason || "recognisers busy"})`
      : `${who}：转写暂不可用 (transcription unavailable: ${msg.reason || "no recogniser"})`;
    const lines = Object.values(state.transcriptDown);
    box.textContent = lines.join("；");
    box.hidden = lines.length === 0;
  }

  function insertByStart(box, li) {
    const start = Number(li.dataset.startMs);
    let before = null;
    for (let node = box.lastElementChild; node; node = node.previousElementSibling) {
      if (Number(node.dataset.startMs) <= start) break;
      before = node;
    }
    box.insertBefore(li, before);
  }

  function renderSegmentText(li) {
    const text = li.dataset.text || "";
    const target = li.querySelector(".text");
    const span = state.spans.get(li.dataset.segmentId);
    if (span && li.dataset.final === "1" && text.slice(span.start, span.end) === span.text) {
      const mark = el("mark", {});
      let at = span.start;
      for (const fix of span.fixes) {
        if (fix.start < at || fix.end > span.end || text.slice(fix.start, fix.end) !== fix.heard) continue;
        mark.append(text.slice(at, fix.start), correctedName(fix));
        at = fix.end;
      }
      mark.append(text.slice(at, span.end));
      target.replaceChildren(text.slice(0, span.start), mark, text.slice(span.end));
    } else {
      target.textContent = text;
    }
  }

  // A place name the recogniser misheard: the official name is shown; a click (or Enter) shows what was heard.
  function correctedName(fix) {
    const node = el("span", {
      className: "corrected",
      textContent: fix.name,
      title: `听到 heard: ${fix.heard}`,
      tabIndex: 0,
    });
    node.setAttribute("role", "button");
    node.setAttribute("aria-pressed", "false");
    node.dataset.name = fix.name;
    node.dataset.heard = fix.heard;
    const toggle = () => {
      const heard = node.getAttribute("aria-pressed") !== "true";
      node.setAttribute("aria-pressed", String(heard));
      node.textContent = heard ? fix.heard : fix.name;
      node.title = heard ? `地名 name: ${fix.name}` : `听到 heard: ${fix.heard}`;
    };
    node.addEventListener("click", toggle);
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        toggle();
      }
    });
    return node;
  }

  // Mentions of the top candidate that the gazetteer matched by sound, not by the characters heard.
  function spanFixes(msg) {
    const top = (msg.candidates || [])[0];
    return (top?.mentions || [])
      .filter((m) => m.source === "final" && m.kind === "phonetic" && m.name && m.text !== m.name)
      .map((m) => ({ start: m.start, end: m.end, heard: m.text, name: m.name }))
      .sort((a, b) => a.start - b.start);
  }

  function clock(ms) {
    const seconds = Math.floor(ms / 1000);
    return `${String(Math.floor(seconds / 60)).padStart(2, "0")}:${String(seconds % 60).padStart(2, "0")}`;
  }

  // ---- address card ----

  function onCandidates(msg) {
    const candidates = msg.candidates || [];
    if (!candidates.length && !(msg.conflicts || []).length) {
      // The line whose partial put a place on the card ended with no place: take it off, unless the operator
      // has already worked on it.
      const shown = state.address;
      if (shown && !shown.dirty && !shown.confirmed && shown.event?.segment_id === msg.segment_id) {
        state.address = null;
        fillForm({});
        renderAddress();
        clearMapPlace();
      }
      return;
    }
    if (msg.span && msg.segment_id) {
      state.spans.set(msg.segment_id, { ...msg.span, fixes: spanFixes(msg) });
      const li = state.segments.get(msg.segment_id);
      if (li) renderSegmentText(li);
    }
    const keepForm = state.address?.dirty;
    state.address = { event: msg, selected: keepForm ? -1 : 0, dirty: !!keepForm, confirmed: null };
    renderAddress();
    if (!keepForm && candidates.length) selectCandidate(0, false);
  }

  function candidatePlace(c) {
    return [c.district, c.town, c.community].filter(Boolean).join(" › ") || c.adcode || "?";
  }

  function renderAddress() {
    const address = state.address;
    const msg = address?.event;
    $("address-empty").hidden = !!msg;
    const span = $("address-span");
    if (msg?.span?.text || msg?.text) {
      span.replaceChildren("“", el("mark", { textContent: msg.span?.text || msg.text }), "”");
      span.hidden = false;
    } else {
      span.hidden = true;
    }
    const conflicts = $("address-conflicts");
    conflicts.replaceChildren(
      ...(msg?.conflicts || []).map((c) => el("li", { textContent: `⚠ ${typeof c === "string" ? c : c.message || c.kind}` })),
    );
    conflicts.hidden = !conflicts.childElementCount;
    const list = $("address-candidates");
    list.replaceChildren();
    (msg?.candidates || []).forEach((c, index) => {
      const flagged = (c.conflicts || []).length > 0;
      const li = el(
        "li",
        { className: flagged ? "conflict" : "", title: (c.conflicts || []).map((x) => x.message || x.kind).join("\n") },
        el("span", { className: "rank", textContent: String(index + 1) }),
        el("span", { className: "place", textContent: candidatePlace(c) }),
        el("span", { className: "level", textContent: LEVELS[c.level] || c.level || "" }),
        el("span", { className: "conf", textContent: `${Math.round((c.confidence ?? 0) * 100)}%` }),
      );
      if (flagged) li.append(el("span", { className: "flag", textContent: "⚠" }));
      li.dataset.index = String(index);
      li.dataset.district = c.district || "";
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(address.selected === index));
      li.addEventListener("click", () => selectCandidate(index, true));
      list.append(li);
    });
    const stateNode = $("address-state");
    if (address?.confirmed) {
      stateNode.textContent = address.confirmed === "corrected" ? "已更正 ✓ corrected" : "已确认 ✓ confirmed";
      stateNode.className = "address-state ok";
    } else {
      stateNode.textContent = "";
      stateNode.className = "address-state";
    }
    updateConfirmButton();
  }

  function selectCandidate(index, byOperator) {
    const address = state.address;
    const c = address?.event?.candidates?.[index];
    if (!c) return;
    address.selected = index;
    address.dirty = byOperator && index !== 0;
    address.confirmed = null;
    fillForm(c);
    renderAddress();
    showPlace(c);
  }

  function fillForm(c) {
    $("addr-district").value = c.district || "";
    $("addr-town").value = c.town || "";
    $("addr-community").value = c.community || "";
    $("addr-lng").value = c.lng != null ? Number(c.lng).toFixed(6) : "";
    $("addr-lat").value = c.lat != null ? Number(c.lat).toFixed(6) : "";
  }

  // ---- address by typing: the gazetteer's search (names, pinyin, initials) ----

  const placeHits = new Map(); // label -> hit
  let searchTimer = null;

  function onSearchInput() {
    clearTimeout(searchTimer);
    const query = $("addr-search").value.trim();
    const hit = placeHits.get(query);
    if (hit) return void pickPlace(hit); // chosen from the list
    if (!query) return;
    searchTimer = setTimeout(async () => {
      let places;
      try {
        places = (await api("GET", `/api/gazetteer/search?q=${encodeURIComponent(query)}&limit=10`)).places;
      } catch {
        return;
      }
      placeHits.clear();
      const list = $("addr-search-hits");
      list.replaceChildren();
      for (const place of places) {
        placeHits.set(place.label, place);
        list.append(el("option", { value: place.label }));
      }
    }, 150);
  }

  function pickPlace(hit) {
    fillForm({ district: hit.district, town: hit.town, community: hit.community, lng: hit.lng, lat: hit.lat });
    markEdited();
  }

  function markEdited() {
    if (!state.address) state.address = { event: null, selected: -1, dirty: true, confirmed: null };
    state.address.dirty = true;
    state.address.confirmed = null;
    renderAddress();
  }

  function addressSegment() {
    return state.address?.event?.segment_id || state.lastFinalSegment;
  }

  function updateConfirmButton() {
    $("btn-address-confirm").disabled = !(state.call && addressSegment() && $("addr-district").value);
  }

  async function onConfirmAddress(event) {
    event.preventDefault();
    if (!state.call) return;
    const number = (id) => {
      const value = Number.parseFloat($(id).value);
      return Number.isFinite(value) ? value : null;
    };
    const address = state.address;
    const source = address && address.selected === 0 && !address.dirty ? "confirmed" : "corrected";
    const body = {
      segment_id: addressSegment(),
      district: $("addr-district").value || null,
      town: $("addr-town").value.trim() || null,
      community: $("addr-community").value.trim() || null,
      lng: number("addr-lng"),
      lat: number("addr-lat"),
      source,
    };
    try {
      await api("POST", `/api/calls/${encodeURIComponent(state.call.call_id)}/address`, body);
      if (!state.address) state.address = { event: null, selected: -1, dirty: true };
      state.address.confirmed = source;
      renderAddress();
      showPlace(confirmedPlace(body));
    } catch (exc) {
      $("address-state").textContent = `提交失败 (failed): ${exc.message}`;
      $("address-state").className = "address-state error";
    }
  }

  // Also what another tab of this operator (or a reload's replay) learns of a confirmation.
  function onAddressConfirmedEvent(msg) {
    if (!state.address) state.address = { event: null, selected: -1, dirty: false };
    state.address.confirmed = msg.source === "corrected" ? "corrected" : "confirmed";
    fillForm(msg);
    renderAddress();
    showPlace(confirmedPlace(msg));
  }

  // A confirmed place keeps the street box of the candidate it came from (the POST carries a point only).
  function confirmedPlace(place) {
    const c = state.address?.event?.candidates?.find((x) => x.district === place.district && x.town === place.town);
    const level = place.community ? "community" : place.town ? "town" : "district";
    return { ...place, level, bbox: place.town && c ? c.bbox : null };
  }

  // ---- map (Leaflet, no tiles: the district polygons only) ----

  const mapState = { map: null, districts: null, features: [], place: null, highlighted: null };

  function mapMessage(text) {
    $("map-message").textContent = text || "";
    $("map-message").hidden = !text;
  }

  function initMap() {
    if (mapState.map) {
      mapState.map.invalidateSize();
      return;
    }
    if (!window.L) {
      mapMessage("地图库未加载 (Leaflet missing: run `npm ci`)");
      return;
    }
    const map = L.map("map", { attributionControl: false, zoomSnap: 0.25, minZoom: 7, maxZoom: 16 });
    map.setView([40.2, 116.4], 8.5);
    mapState.map = map;
    mapState.districts = L.geoJSON(null, {
      style: () => districtStyle(false),
      onEachFeature: (feature, layer) => {
        layer.options.className = "district";
        layer.feature = feature;
      },
    }).addTo(map);
    map.on("click", onMapClick);
    new ResizeObserver(() => map.invalidateSize()).observe($("map")); // the cards above it change height
    loadDistricts();
  }

  function districtStyle(active) {
    return {
      className: "district",
      color: active ? "#c62828" : "#78909c",
      weight: active ? 2.5 : 1,
      fillColor: active ? "#ef9a9a" : "#fdfdfd",
      fillOpacity: active ? 0.35 : 0.8,
    };
  }

  async function loadDistricts() {
    let geojson;
    try {
      geojson = await api("GET", "/api/gazetteer/districts.geojson");
      if (typeof geojson === "string") geojson = JSON.parse(geojson);
    } catch (exc) {
      mapMessage(`区界未加载 (district boundaries): ${exc.message}`);
      return;
    }
    mapState.features = geojson.features || [];
    mapState.districts.addData(geojson);
    const select = $("addr-district");
    select.replaceChildren(el("option", { value: "", textContent: "—" }));
    for (const feature of mapState.features) {
      const { name, center } = feature.properties || {};
      if (!name) continue;
      select.append(el("option", { value: name, textContent: name }));
      if (center) {
        mapState.map.openTooltip(
          L.tooltip({ permanent: true, direction: "center", className: "district-label" })
            .setLatLng([center[1], center[0]]).setContent(name),
        );
      }
    }
    mapState.map.fitBounds(mapState.districts.getBounds(), { padding: [8, 8] });
    $("map").dataset.districts = String(mapState.features.length);
    if (state.address?.event) {
      const c = state.address.event.candidates?.[state.address.selected];
      if (c) {
        fillForm(c);
        showPlace(c);
      }
    }
    updateConfirmButton();
  }

  function clearMapPlace() {
    if (mapState.place) mapState.place.remove();
    mapState.place = null;
    if (mapState.highlighted) mapState.highlighted.setStyle(districtStyle(false));
    mapState.highlighted = null;
    const node = $("map");
    delete node.dataset.place;
    delete node.dataset.district;
  }

  function showPlace(c) {
    if (!mapState.map) return;
    clearMapPlace();
    const map = mapState.map;
    const group = L.featureGroup();
    let district = null;
    mapState.districts?.eachLayer((layer) => {
      if (layer.feature?.properties?.name === c.district) district = layer;
    });
    if (district) {
      district.setStyle(districtStyle(true));
      district.bringToFront();
      mapState.highlighted = district;
    }
    if (Array.isArray(c.bbox) && c.bbox.length === 4) {
      const [w, s, e, n] = c.bbox;
      L.rectangle([[s, w], [n, e]], { className: "candidate-box", color: "#1565c0", weight: 2, fillOpacity: 0.12 }).addTo(group);
    }
    if (c.lng != null && c.lat != null) {
      L.circleMarker([c.lat, c.lng], {
        className: "candidate-marker", radius: 8, color: "#fff", weight: 2, fillColor: "#d32f2f", fillOpacity: 1,
      }).bindTooltip(candidatePlace(c)).addTo(group);
    }
    group.addTo(map);
    mapState.place = group;
    const node = $("map");
    node.dataset.place = group.getLayers().length ? "1" : "0";
    node.dataset.district = c.district || "";
    // No tiles, so the district is the context: show it whole, with the street box and point inside.
    const bounds = district ? L.latLngBounds([district.getBounds()]) : null; // a copy: extend() mutates
    if (group.getLayers().length) {
      const place = group.getBounds();
      if (bounds) map.fitBounds(bounds.extend(place), { padding: [20, 20] });
      else map.fitBounds(place, { padding: [40, 40], maxZoom: 12 });
    } else if (bounds) {
      map.fitBounds(bounds, { padding: [20, 20] });
    }
  }

  function onMapClick(event) {
    if (!state.call) return;
    const { lat, lng } = event.latlng;
    const feature = mapState.features.find((f) => containsPoint(f.geometry, lng, lat));
    if (feature) $("addr-district").value = feature.properties.name;
    $("addr-lng").value = lng.toFixed(6);
    $("addr-lat").value = lat.toFixed(6);
    markEdited();
    showPlace({
      district: $("addr-district").value, town: $("addr-town").value, community: $("addr-community").value,
      lng, lat, level: "town",
    });
  }

  function containsPoint(geometry, x, y) {
    const type = geometry?.type;
    const polygons = type === "Polygon" ? [geometry.coordinates] : type === "MultiPolygon" ? geometry.coordinates : [];
    return polygons.some(([outer, ...holes]) => inRing(outer, x, y) && !holes.some((hole) => inRing(hole, x, y)));
  }

  function inRing(ring, x, y) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i];
      const [xj, yj] = ring[j];
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }

  // ---- event stream ----

  function setConn(conn, detail) {
    state.conn = conn;
    const node = $("conn-state");
    node.dataset.state = conn;
    node.textContent = detail ? `${CONN_STATES[conn]} ${detail}` : CONN_STATES[conn];
  }

  function connect() {
    if (!state.token) return;
    clearTimeout(state.wsTimer);
    const url = new URL("/api/events", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", state.token);
    if (state.lastSeq > 0) url.searchParams.set("after", String(state.lastSeq));
    if (state.epoch) url.searchParams.set("epoch", state.epoch);
    setConn(state.wsAttempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(url);
    state.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      state.wsAttempt = 0;
      setConn("connected");
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      for (const item of Array.isArray(msg) ? msg : [msg]) onEvent(item);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return; // replaced or closed on purpose
      state.ws = null;
      if (!state.token) return setConn("offline");
      if (AUTH_CLOSE_CODES.has(event.code) || !opened) {
        refreshMe(); // a 401 here logs out; otherwise keep retrying
      }
      const delay = BACKOFF_MS[Math.min(state.wsAttempt, BACKOFF_MS.length - 1)] * (0.8 + Math.random() * 0.4);
      state.wsAttempt += 1;
      setConn("reconnecting", `${Math.round(delay / 100) / 10}s`);
      state.wsTimer = setTimeout(connect, delay);
    };
  }

  function closeSocket() {
    clearTimeout(state.wsTimer);
    const ws = state.ws;
    state.ws = null;
    state.wsAttempt = 0;
    if (ws) ws.close(1000, "logout");
    setConn("offline");
  }

  async function resync(msg) {
    // The server numbers from another database now (replaced or restored): rebuild the desk from REST and
    // continue from its seq, instead of dropping every message as "already seen".
    state.lastSeq = typeof msg.last_seq === "number" ? msg.last_seq : 0;
    state.epoch = msg.epoch || null;
    resetCall();
    await loadCurrentCall();
    showMessage("已与服务器重新同步 (resynchronised with the server)", "ok");
  }

  function onEvent(msg) {
    if (!msg || typeof msg !== "object" || !msg.type) return;
    if (msg.type === "resync") return void resync(msg);
    if (msg.type === "stream.status") {
      $("stream-status").hidden = msg.state !== "waiting_for_database";
      return;
    }
    if (typeof msg.seq === "number") {
      if (msg.seq <= state.lastSeq) return; // already seen (resume overlap)
      state.lastSeq = msg.seq;
    }
    const current = state.call?.call_id;
    const mine = msg.call_id && msg.call_id === current;
    switch (msg.type) {
      case "call.offered":
        beginCall(msg.call_id, { ...msg, status: mine && state.call.status === "active" ? "active" : "ringing" });
        refreshMe();
        break;
      case "call.answered":
        beginCall(msg.call_id, { ...msg, status: "active" });
        refreshMe();
        break;
      case "call.ended":
        if (mine) endCall(msg.reason, msg.ts);
        break;
      case "call.transferred":
        if (msg.operator_id && state.me?.operator_id && msg.operator_id === state.me.operator_id && !mine) {
          beginCall(msg.call_id, { ...msg, status: "active" });
        } else if (mine) {
          showMessage(`已转接 → ${msg.target}`, "ok");
          if (msg.operator_id !== state.me?.operator_id) endCall("transferred", msg.ts);
        }
        break;
      case "transcript.partial":
      case "transcript.final":
        if (mine || !current) upsertSegment(msg, msg.type === "transcript.final");
        break;
      case "transcript.gap":
        if (mine || !current) showGap(msg);
        break;
      case "transcript.status":
        if (mine || !current) showTranscriptStatus(msg);
        break;
      case "address.candidates":
        if (mine || !current) onCandidates(msg);
        break;
      case "call.alert":
        if (mine) onAlert(msg);
        break;
      case "address.confirmed":
        if (mine) onAddressConfirmedEvent(msg);
        break;
      case "interpreter.joined":
      case "interpreter.left":
      case "interpreter.failed":
        if (mine) {
          const language = msg.interpreter_language || state.call.interpreter?.language || "other";
          state.call.interpreter = { language, state: msg.type.split(".")[1] };
          renderCall();
        }
        break;
      default:
        break; // unknown types (pings, later additions) are ignored
    }
    announce("desk:message", { msg, mine: Boolean(mine) });
  }

  // ---- wiring ----

  function init() {
    const select = $("interpreter-language");
    for (const [code, name] of Object.entries(LANGUAGES)) {
      if (code !== "zh") select.append(el("option", { value: code, textContent: name }));
    }
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", () => logout());
    for (const button of document.querySelectorAll("#presence button")) {
      button.addEventListener("click", () => setPresence(button.dataset.presence));
    }
    $("btn-hangup").addEventListener("click", () => control("POST", "hangup", undefined, "已挂断 hung up"));
    $("btn-transfer").addEventListener("click", () => {
      const target = $("transfer-target").value.trim();
      if (!target) return showMessage("请输入转接目标 (an operator id, or queue:<skill>)", "error");
      return control("POST", "transfer", { target }, `转接中 → ${target}`);
    });
    $("btn-interpreter-add").addEventListener("click", () => {
      const language = $("interpreter-language").value;
      return control("POST", "interpreter", { language }, `正在呼叫翻译 (${LANGUAGES[language] || language})`);
    });
    $("btn-interpreter-drop").addEventListener("click", () => control("DELETE", "interpreter", undefined, "翻译已移除"));
    $("address-form").addEventListener("submit", onConfirmAddress);
    $("addr-search").addEventListener("input", onSearchInput);
    for (const id of ["addr-district", "addr-town", "addr-community", "addr-lng", "addr-lat"]) {
      $(id).addEventListener("input", markEdited);
    }
    setInterval(renderDuration, 1000);
    setInterval(() => state.token && refreshMe(), 15000);
    renderCall();
    if (state.token) enterDesk();
    else $("login-username").focus();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
