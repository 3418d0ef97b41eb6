/*! chatserver widget v1: plain JS, no dependencies, no build step.
 * Privacy (docs/PRIVACY.md): nothing happens until the visitor opens the chat (P11):
 * no socket, no storage. The draft lives in sessionStorage (P12). No analytics (P13). */
(function () {
  "use strict";
  if (window.ChatWidget) return;

  var script = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-site]') ||
    document.querySelector('script[src*="widget.js"]');
  var data = (script && script.dataset) || {};
  var origin = new URL(script ? script.src : location.href, location.href).origin;
  var wsURL = origin.replace(/^http/, "ws") + "/ws/visitor";
  var TOKEN_KEY = "chatserver.visitor";
  var DRAFT_KEY = "chatserver.draft";
  var MAX_BODY = 10000;

  var STRINGS = {
    en: {
      launcher: "Chat with us", close: "Close chat", title: "Chat",
      placeholder: "Write a message…", send: "Send", label: "Message",
      pending: "Sending…", sent: "Sent", failed: "Not sent", retry: "Retry",
      connecting: "Connecting…", offline: "Offline. Messages will be sent when the connection is back.",
      typing: "{name} is typing…", someone: "Support", you: "You",
      notice: "Before you write: read how we handle your chat data in our", policy: "privacy notice",
      accept: "OK, start chat", empty: "Ask us anything. We usually answer within minutes.",
      unread: "{n} unread"
    },
    nb: {
      launcher: "Chat med oss", close: "Lukk chatten", title: "Chat",
      placeholder: "Skriv en melding…", send: "Send", label: "Melding",
      pending: "Sender…", sent: "Sendt", failed: "Ikke sendt", retry: "Prøv igjen",
      connecting: "Kobler til…", offline: "Frakoblet. Meldinger sendes når forbindelsen er tilbake.",
      typing: "{name} skriver…", someone: "Kundeservice", you: "Du",
      notice: "Før du skriver: les hvordan vi behandler chatdata i vår", policy: "personvernerklæring",
      accept: "OK, start chatten", empty: "Spør oss om hva som helst. Vi svarer vanligvis i løpet av minutter.",
      unread: "{n} uleste"
    }
  };
  var lang = (data.locale || document.documentElement.lang || navigator.language || "en").toLowerCase();
  var T = /^(nb|no|nn)\b/.test(lang) ? STRINGS.nb : STRINGS.en;

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font:inherit}",
    ".w{position:fixed;right:20px;bottom:20px;z-index:2147483000;font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2430}",
    ".l{position:relative;width:56px;height:56px;border-radius:50%;border:0;background:#1f5fbf;color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;margin-left:auto}",
    ".l:focus-visible,button:focus-visible,a:focus-visible,textarea:focus-visible{outline:3px solid #f0a500;outline-offset:2px}",
    ".l svg{width:28px;height:28px;fill:currentColor}",
    ".b{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#c62828;color:#fff;font-size:12px;font-weight:700;line-height:22px;text-align:center}",
    ".p{width:min(370px,calc(100vw - 24px));height:min(540px,calc(100vh - 110px));margin-bottom:12px;background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}",
    "[hidden]{display:none!important}",
    ".h{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;background:#1f5fbf;color:#fff;font-weight:600}",
    ".x{border:0;background:transparent;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:2px 8px;border-radius:4px}",
    ".s{padding:4px 14px;font-size:13px;background:#fff4d6;color:#5a4300}",
    ".g{flex:1;overflow-y:auto;padding:12px 14px;display:flex;flex-direction:column;gap:8px}",
    ".e{color:#5b6573;font-size:14px;text-align:center;margin:auto 0}",
    ".m{max-width:82%;padding:8px 11px;border-radius:12px;background:#eef1f5;white-space:pre-wrap;overflow-wrap:anywhere;align-self:flex-start}",
    ".m.me{align-self:flex-end;background:#1f5fbf;color:#fff}",
    ".m.me a{color:#fff}",
    ".m.sys{align-self:center;background:transparent;color:#5b6573;font-size:13px}",
    ".n{font-size:12px;font-weight:600;margin-bottom:2px;color:#3b4656}",
    ".t{display:block;font-size:11px;opacity:.8;margin-top:3px;text-align:right}",
    ".m.failed{background:#fde7e7;color:#8a1c1c}",
    ".r{margin-left:6px;border:1px solid currentColor;background:transparent;color:inherit;border-radius:4px;font-size:11px;cursor:pointer;padding:0 6px}",
    ".y{min-height:20px;padding:0 14px;font-size:13px;color:#5b6573;font-style:italic}",
    ".c{padding:10px 14px;font-size:13px;background:#f3f6fb;border-top:1px solid #dde3ec}",
    ".c button{margin-top:6px;border:0;border-radius:6px;background:#1f5fbf;color:#fff;padding:6px 12px;cursor:pointer}",
    ".f{display:flex;gap:8px;padding:10px;border-top:1px solid #dde3ec}",
    ".f textarea{flex:1;resize:none;height:44px;max-height:120px;padding:8px;border:1px solid #b8c2d0;border-radius:8px;font-size:15px;color:#1d2430}",
    ".f button{border:0;border-radius:8px;background:#1f5fbf;color:#fff;padding:0 14px;cursor:pointer;font-weight:600}",
    ".f button:disabled{background:#9aa7b8;cursor:default}",
    ".v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}"
  ].join("");

  // ------------------------------------------------------------------ state
  var ws = null, ready = false, attempt = 0, retryTimer = null, wanted = false;
  var visitorId = null, convId = null, lastSeq = 0, seen = {}, replaying = false;
  var policy = null, consentVersion = null, identity = data.identity || null;
  var outbox = []; // own messages not yet acked: {id, body, state, el}
  var isOpen = false, unread = 0, readSent = 0;
  var typingSentAt = 0, typingIdle = null, typingHide = null;
  var listeners = {};
  var ui = null;

  function emit(name, arg) {
    (listeners[name] || []).slice().forEach(function (fn) {
      try { fn(arg); } catch (e) { setTimeout(function () { throw e; }); }
    });
  }
  function fmt(s, v) { return s.replace(/\{(\w+)\}/g, function (_, k) { return v[k]; }); }
  function store(kind) { try { return window[kind]; } catch (e) { return null; } }
  function get(kind, key) { var s = store(kind); try { return s ? s.getItem(key) : null; } catch (e) { return null; } }
  function put(kind, key, value) {
    var s = store(kind);
    try { if (s) { if (value == null || value === "") s.removeItem(key); else s.setItem(key, value); } } catch (e) { /* full or blocked */ }
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)), h = [];
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    for (var i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1));
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") + "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // Message text to DOM: text nodes, plus anchors for http(s) URLs. Never innerHTML.
  var URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  function linkify(parent, text) {
    var last = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text))) {
      var url = m[0].replace(/[.,;:!?)\]}'"]+$/, "");
      if (!url) continue;
      parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      var a = el("a", null, url);
      a.href = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow";
      parent.appendChild(a);
      last = m.index + url.length;
      URL_RE.lastIndex = last;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // ------------------------------------------------------------------ UI
  function build() {
    if (ui) return ui;
    var host = el("div");
    host.id = "chatserver-widget";
    var root = host.attachShadow({ mode: "open" });
    if (root.adoptedStyleSheets && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.appendChild(el("style", null, CSS));
    }
    var w = el("div", "w");
    var panel = el("div", "p");
    panel.id = "cs-panel";
    panel.hidden = true;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", T.title);
    var head = el("div", "h");
    var title = el("span", null, T.title);
    var x = el("button", "x", "×");
    x.type = "button";
    x.setAttribute("aria-label", T.close);
    head.append(title, x);
    var status = el("div", "s");
    status.hidden = true;
    status.setAttribute("role", "status");
    var log = el("div", "g");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-label", T.title);
    log.tabIndex = 0;
    var empty = el("p", "e", T.empty);
    log.appendChild(empty);
    var typing = el("div", "y");
    typing.setAttribute("aria-live", "polite");
    var consent = el("div", "c");
    consent.hidden = true;
    var form = el("form", "f");
    var lab = el("label", "v", T.label);
    lab.htmlFor = "cs-input";
    var input = el("textarea");
    input.id = "cs-input";
    input.rows = 1;
    input.maxLength = MAX_BODY;
    input.placeholder = T.placeholder;
    var send = el("button", null, T.send);
    send.type = "submit";
    form.append(lab, input, send);
    panel.append(head, status, log, typing, consent, form);
    var launcher = el("button", "l");
    launcher.type = "button";
    launcher.setAttribute("aria-label", T.launcher);
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", "cs-panel");
    launcher.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>';
    var badge = el("span", "b");
    badge.hidden = true;
    launcher.appendChild(badge);
    w.append(panel, launcher);
    root.appendChild(w);
    document.body.appendChild(host);

    launcher.addEventListener("click", function () { if (isOpen) close(); else open(); });
    x.addEventListener("click", function () { close(); launcher.focus(); });
    panel.addEventListener("keydown", function (e) { if (e.key === "Escape") { close(); launcher.focus(); } });
    form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    });
    input.addEventListener("input", function () {
      put("sessionStorage", DRAFT_KEY, input.value);
      typingInput();
    });
    ui = { root: root, panel: panel, log: log, empty: empty, typing: typing, status: status, consent: consent,
      input: input, send: send, launcher: launcher, badge: badge };
    return ui;
  }

  // data-conn on the panel says where the socket stands: connecting, offline or ready
  // (welcome handled and the newest conversation resumed). Tests and styles may use it.
  function setStatus(text, conn) {
    if (!ui) return;
    ui.panel.dataset.conn = conn;
    ui.status.textContent = text || "";
    ui.status.hidden = !text;
  }

  function renderConsent() {
    if (!ui) return;
    var need = needConsent();
    ui.consent.hidden = !need;
    ui.send.disabled = need;
    ui.consent.textContent = "";
    if (!need) return;
    var p = el("p", null, T.notice + " ");
    var a = el("a", null, T.policy);
    var href = new URL(policy.url || "/privacy", origin);
    a.href = /^https?:$/.test(href.protocol) ? href.href : origin + "/privacy";
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    p.append(a, document.createTextNode("."));
    var ok = el("button", null, T.accept);
    ok.type = "button";
    ok.addEventListener("click", accept);
    ui.consent.append(p, ok);
  }
  function needConsent() { return !!(policy && policy.version && !policy.accepted); }

  function bubble(msg, mine) {
    var d = el("div", "m" + (mine ? " me" : "") + (msg.kind === "event" || (msg.author && msg.author.role === "system") ? " sys" : ""));
    if (!mine && msg.author && msg.author.role === "agent") d.appendChild(el("div", "n", msg.author.name || T.someone));
    var body = el("span");
    linkify(body, msg.body || "");
    d.appendChild(body);
    var meta = el("span", "t");
    d.appendChild(meta);
    if (msg.ts) setTime(d, msg.ts);
    return d;
  }
  function setTime(d, ts) {
    var t = new Date(ts);
    var meta = d.querySelector(".t");
    meta.textContent = isNaN(t) ? "" : t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  // Keep the log in seq order; own unacked messages stay at the end.
  function place(d, seq) {
    var log = ui.log;
    ui.empty.hidden = true;
    d.dataset.seq = seq == null ? "" : String(seq);
    if (seq != null) {
      for (var c = log.firstChild; c; c = c.nextSibling) {
        if (c.dataset && c.dataset.seq !== undefined && (c.dataset.seq === "" || +c.dataset.seq > seq)) {
          log.insertBefore(d, c);
          return scroll();
        }
      }
    }
    log.appendChild(d);
    scroll();
  }
  function scroll() { ui.log.scrollTop = ui.log.scrollHeight; }
  function clearLog() {
    if (!ui) return;
    Array.prototype.slice.call(ui.log.children).forEach(function (c) { if (c !== ui.empty) c.remove(); });
    ui.empty.hidden = false;
  }
  function showState(item) {
    var d = item.el, meta = d.querySelector(".t");
    d.classList.toggle("failed", item.state === "failed");
    d.setAttribute("aria-busy", item.state === "acked" ? "false" : "true");
    d.dataset.state = item.state;
    if (item.state === "acked") return;
    meta.textContent = item.state === "failed" ? T.failed : T.pending;
    if (item.state === "failed") {
      var r = el("button", "r", T.retry);
      r.type = "button";
      r.addEventListener("click", function () { item.state = "queued"; showState(item); flush(); });
      meta.appendChild(r);
    }
  }
  function setBadge() {
    if (!ui) return;
    ui.badge.hidden = !unread;
    ui.badge.textContent = unread > 99 ? "99+" : String(unread);
    ui.launcher.setAttribute("aria-label", unread ? T.launcher + " (" + fmt(T.unread, { n: unread }) + ")" : T.launcher);
  }

  // ------------------------------------------------------------------ socket
  function connect() {
    if (ws || !wanted) return;
    clearTimeout(retryTimer);
    ready = false;
    setStatus(attempt ? T.offline : T.connecting, attempt ? "offline" : "connecting");
    var sock;
    try { sock = new WebSocket(wsURL); } catch (e) { return reconnectLater(); }
    ws = sock;
    sock.onopen = function () {
      var hello = {
        type: "hello",
        page: { url: location.href.slice(0, 2048), title: document.title.slice(0, 2048), referrer: document.referrer.slice(0, 2048) },
        locale: (navigator.language || "").slice(0, 35)
      };
      var token = get("localStorage", TOKEN_KEY);
      if (token) hello.visitor_token = token;
      if (identity) hello.identity = identity;
      if (consentVersion) hello.consent = { version: consentVersion };
      sock.send(JSON.stringify(hello));
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      ready = false;
      outbox.forEach(function (m) { if (m.state === "sent") m.state = "queued"; });
      if (!wanted) return;
      if (ev.code === 1013) attempt = 0; // "try again": reconnect soon and resume
      reconnectLater();
    };
  }
  function reconnectLater() {
    ws = null;
    if (!wanted) return;
    setStatus(T.offline, "offline");
    var cap = Math.min(30000, 500 * Math.pow(2, attempt++));
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, 250 + Math.random() * cap); // full jitter
  }
  function drop() {
    wanted = false;
    clearTimeout(retryTimer);
    if (ws) { var s = ws; ws = null; s.close(1000); }
    ready = false;
    setStatus("", "closed");
  }
  function frame(obj) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function onFrame(f) {
    switch (f.type) {
      case "welcome": return onWelcome(f);
      case "resumed":
        if (f.conversation_id === convId) {
          if (f.last_seq > lastSeq) lastSeq = f.last_seq; // all up to it replayed (notes skipped)
          replaying = false;
          becomeReady();
        }
        return;
      case "message": return onMessage(f);
      case "ack": return onAck(f);
      case "error": return onError(f);
      case "typing": return onTyping(f);
      case "conversation":
        if (!convId && f.id) convId = f.id; // started in another tab
        return;
    }
  }

  function onWelcome(f) {
    attempt = 0;
    if (visitorId && f.visitor_id !== visitorId) resetConversation(); // token forgotten by the server
    visitorId = f.visitor_id;
    put("localStorage", TOKEN_KEY, f.visitor_token); // only ever reached after the visitor opened the chat
    policy = f.policy || null;
    if (policy && policy.accepted) consentVersion = null;
    renderConsent();
    var list = f.conversations || [], conv = null;
    for (var i = 0; i < list.length; i++) if (list[i].id === convId) conv = list[i];
    if (!conv && list.length) conv = list[list.length - 1]; // the server lists oldest first
    if (conv) {
      if (conv.id !== convId) { resetConversation(); convId = conv.id; }
      replaying = lastSeq ? "missed" : "history"; // history on a fresh page is not "unread"
      frame({ type: "resume", conversation_id: conv.id, after_seq: Math.min(lastSeq, conv.last_seq) });
    } else {
      becomeReady();
    }
  }
  function resetConversation() {
    convId = null; lastSeq = 0; seen = {}; readSent = 0;
    var keep = outbox.filter(function (m) { return m.state !== "acked"; });
    clearLog();
    keep.forEach(function (m) { place(m.el, null); });
  }
  function becomeReady() {
    ready = true;
    setStatus("", "ready");
    flush();
    markRead();
  }

  function onMessage(f) {
    if (!convId) convId = f.conversation_id;
    if (f.conversation_id !== convId || seen[f.seq] || f.kind === "note") return;
    seen[f.seq] = true;
    if (f.seq > lastSeq) lastSeq = f.seq;
    build();
    var mine = f.author && f.author.role === "visitor";
    place(bubble(f, mine), f.seq);
    if (f.author && f.author.role === "agent") hideTyping();
    if (!mine && replaying !== "history" && !(isOpen && !document.hidden)) { unread++; setBadge(); emit("unread", unread); }
    emit("message", { conversation_id: f.conversation_id, seq: f.seq, ts: f.ts, author: f.author, body: f.body, kind: f.kind, replay: !!replaying });
    markRead();
  }

  function onAck(f) {
    var item = null;
    for (var i = 0; i < outbox.length; i++) if (outbox[i].id === f.client_msg_id) item = outbox[i];
    if (!item) return;
    outbox.splice(outbox.indexOf(item), 1);
    if (!convId) convId = f.conversation_id;
    item.state = "acked";
    if (seen[f.seq]) {
      item.el.remove(); // already shown by a resume replay after a reconnect
    } else {
      seen[f.seq] = true;
      if (f.seq > lastSeq) lastSeq = f.seq;
      showState(item);
      setTime(item.el, f.ts);
      item.el.title = T.sent;
      place(item.el, f.seq);
    }
    emit("message", { conversation_id: f.conversation_id, seq: f.seq, ts: f.ts, author: { role: "visitor", id: visitorId, name: null }, body: item.body, kind: "text", replay: false });
    flush();
  }

  function onError(f) {
    if (!f.ref) return;
    outbox.forEach(function (m) {
      if (m.id === f.ref && m.state !== "acked") { m.state = "failed"; m.error = f.code; showState(m); }
    });
    flush();
  }

  function onTyping(f) {
    if (!ui || f.conversation_id !== convId || !f.author || f.author.role === "visitor") return;
    clearTimeout(typingHide);
    if (!f.state) return hideTyping();
    ui.typing.textContent = fmt(T.typing, { name: f.author.name || T.someone });
    typingHide = setTimeout(hideTyping, 8000);
  }
  function hideTyping() { if (ui) ui.typing.textContent = ""; }

  // ------------------------------------------------------------------ sending
  function submit() {
    var text = ui.input.value;
    if (!text.trim()) return;
    if (needConsent()) { var b = ui.consent.querySelector("button"); if (b) b.focus(); return; }
    ui.input.value = "";
    put("sessionStorage", DRAFT_KEY, null);
    var item = { id: uuid(), body: text.slice(0, MAX_BODY), state: "queued", el: null };
    item.el = bubble({ body: item.body }, true);
    showState(item);
    place(item.el, null);
    outbox.push(item);
    flush();
  }
  // Send what waits, in order. Until the first message's ack names the new
  // conversation, later messages wait, so that they do not start a second one.
  function flush() {
    if (!ready || needConsent()) return;
    for (var i = 0; i < outbox.length; i++) {
      var m = outbox[i];
      if (!convId && m.state === "sent") return;
      if (m.state !== "queued") continue;
      var f = { type: "send", client_msg_id: m.id, body: m.body };
      if (convId) f.conversation_id = convId;
      if (!frame(f)) return;
      m.state = "sent";
      if (!convId) return;
    }
  }
  function typingInput() {
    if (!convId || !ready) return;
    var now = Date.now();
    if (now - typingSentAt >= 2000) {
      typingSentAt = now;
      frame({ type: "typing", conversation_id: convId, state: true });
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(function () {
      if (convId && ready) frame({ type: "typing", conversation_id: convId, state: false });
      typingSentAt = 0;
    }, 3000);
  }
  function markRead() {
    if (!isOpen || document.hidden) return;
    if (unread) { unread = 0; setBadge(); emit("unread", 0); }
    if (ready && convId && lastSeq > readSent) {
      readSent = lastSeq;
      frame({ type: "read", conversation_id: convId, seq: lastSeq });
    }
  }
  // The visitor accepted the notice. A socket takes one hello, so reconnect
  // at once with the consent in the new hello; the server records it.
  function accept() {
    if (!policy || !policy.version) return;
    consentVersion = policy.version;
    policy.accepted = true; // optimistic; the next welcome says what the server recorded
    renderConsent();
    if (ws) { var s = ws; ws = null; s.close(1000); }
    attempt = 0;
    connect();
    ui.input.focus();
  }

  // ------------------------------------------------------------------ API
  function open() {
    build();
    if (!isOpen) {
      isOpen = true;
      ui.panel.hidden = false;
      ui.launcher.setAttribute("aria-expanded", "true");
      if (!ui.input.value) ui.input.value = get("sessionStorage", DRAFT_KEY) || "";
      ui.input.focus();
      emit("open");
    }
    wanted = true;
    connect();
    markRead();
  }
  function close() {
    if (!isOpen) return;
    isOpen = false;
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    emit("close");
  }
  function identify(token) {
    identity = token || null;
    if (ws) { var s = ws; ws = null; s.close(1000); attempt = 0; connect(); } // one hello per socket
  }
  function logout() {
    drop();
    put("localStorage", TOKEN_KEY, null);
    put("sessionStorage", DRAFT_KEY, null);
    identity = null; visitorId = null; policy = null; consentVersion = null; outbox = [];
    resetConversation();
    if (ui) { ui.input.value = ""; renderConsent(); }
    unread = 0; setBadge();
    close();
  }
  function on(name, fn) {
    (listeners[name] = listeners[name] || []).push(fn);
    return function () { var l = listeners[name]; l.splice(l.indexOf(fn), 1); };
  }

  document.addEventListener("visibilitychange", markRead);
  window.addEventListener("online", function () {
    if (wanted && !ws) { attempt = 0; connect(); }
  });

  window.ChatWidget = { open: open, close: close, identify: identify, logout: logout, on: on };
  if (document.body) build();
  else document.addEventListener("DOMContentLoaded", build);
})();
