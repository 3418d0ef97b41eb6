// The agent console: sign in with the session cookie, an inbox that updates live,
// one thread at a time with replies and internal notes. Plain ES module, no build.
// Message text only ever reaches the page through text nodes (never innerHTML).

const $ = (id) => document.getElementById(id);

const state = {
  me: null,
  convs: new Map(), // id -> conversation (as the API lists it)
  selected: null,
  seqs: new Map(), // seq -> <li> of the open thread
  lastSeq: 0,
  readSent: 0,
  pending: [], // own replies not yet acked: {id, conversation_id, body, kind, el, state}
  online: new Map(),
  ws: null,
  attempt: 0,
  retry: null,
  refresh: null,
  poll: null,
  typingAt: 0,
  typingIdle: null,
  typingHide: null,
};

// ------------------------------------------------------------------ HTTP

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)chatserver_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  const res = await fetch(path, init);
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    if (res.status === 401 && state.me && path !== "/console/login") signedOut(true);
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
  }
  return data;
}

// ------------------------------------------------------------------ helpers

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
function linkify(parent, text) {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const url = m[0].replace(/[.,;:!?)\]}'"]+$/, "");
    if (!url || m.index < last) continue;
    parent.append(document.createTextNode(text.slice(last, m.index)));
    const a = el("a", null, url);
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    parent.append(a);
    last = m.index + url.length;
  }
  parent.append(document.createTextNode(text.slice(last)));
}

function time(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

function visitorLabel(c) {
  const id = (c && c.visitor_id) || "";
  return id ? "Visitor " + id.slice(-6) : "Visitor";
}

function activity(c) {
  return c.last_message_at || c.updated_at || c.created_at || "";
}

function setConn(text) {
  $("conn").textContent = text;
}

// ------------------------------------------------------------------ sign-in

function showLogin(message) {
  $("booting").hidden = true;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("email").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  if (!email || !password) {
    $("login-error").textContent = "Enter your email and password.";
    return;
  }
  const button = event.submitter || $("login-form").querySelector("button");
  button.disabled = true;
  try {
    const data = await api("POST", "/console/login", { email, password });
    $("password").value = "";
    start(data.agent);
  } catch (e) {
    $("login-error").textContent =
      e.status === 401 ? "Wrong email or password." : "Could not sign in: " + e.message;
  } finally {
    button.disabled = false;
  }
}

async function onLogout() {
  try {
    await api("POST", "/console/logout");
  } catch {
    // signed out either way
  }
  signedOut(false);
}

function signedOut(expired) {
  state.me = null;
  clearTimeout(state.retry);
  clearInterval(state.poll);
  if (state.ws) {
    const ws = state.ws;
    state.ws = null;
    ws.close(1000);
  }
  state.selected = null;
  state.pending = [];
  showLogin(expired ? "Your session ended. Sign in again." : "");
}

function start(agent) {
  state.me = agent;
  $("booting").hidden = true;
  $("login").hidden = true;
  $("app").hidden = false;
  $("me").textContent = agent.name;
  state.online.set(agent.id, agent.name);
  renderOnline();
  closeThread();
  loadList();
  connect();
  clearInterval(state.poll);
  // Conversation frames carry no timestamps: re-read the list now and then for activity order.
  state.poll = setInterval(loadList, 30000);
}

// ------------------------------------------------------------------ inbox

async function loadList() {
  if (!state.me) return;
  const q = new URLSearchParams({ limit: "200" });
  const status = $("status-filter").value;
  if (status) q.set("status", status);
  $("conversations").setAttribute("aria-busy", "true");
  try {
    const data = await api("GET", "/api/v1/conversations?" + q);
    const unread = new Set([...state.convs.values()].filter((c) => c._unread).map((c) => c.id));
    state.convs = new Map(data.items.map((c) => [c.id, { ...c, _unread: unread.has(c.id) }]));
    renderList();
    if (state.selected) renderHead();
  } catch (e) {
    if (e.status !== 401) setConn("Could not load conversations: " + e.message);
  } finally {
    $("conversations").setAttribute("aria-busy", "false");
  }
}

function scheduleRefresh() {
  clearTimeout(state.refresh);
  state.refresh = setTimeout(loadList, 800);
}

function matchesFilter(c) {
  const status = $("status-filter").value;
  return !status || c.status === status;
}

function renderList() {
  const ul = $("conversations");
  const items = [...state.convs.values()]
    .filter(matchesFilter)
    .sort((a, b) => (activity(a) < activity(b) ? 1 : activity(a) > activity(b) ? -1 : 0));
  ul.replaceChildren(
    ...items.map((c) => {
      const li = el("li");
      const b = el("button");
      b.type = "button";
      b.dataset.id = c.id;
      if (c.id === state.selected) b.setAttribute("aria-current", "true");
      const who = el("span", "who");
      const name = el("span", null, visitorLabel(c));
      const right = el("span");
      if (c._unread) {
        const dot = el("span", "dot");
        dot.title = "New messages";
        dot.setAttribute("aria-label", "new messages");
        right.append(dot, " ");
      }
      right.append(el("span", "badge " + c.status, c.status));
      who.append(name, right);
      const sub = el(
        "span",
        "sub",
        (c.assignee ? "Assigned to " + c.assignee.name : "Unassigned") + " · " + time(activity(c)),
      );
      b.append(who, sub);
      b.addEventListener("click", () => openConv(c.id));
      li.append(b);
      return li;
    }),
  );
  $("list-empty").hidden = items.length > 0;
}

function upsertConversation(f) {
  const now = new Date().toISOString();
  const known = state.convs.get(f.id);
  const c = known || { id: f.id, visitor_id: null, created_at: now, updated_at: now, last_message_at: null };
  if (known && (known.status !== f.status || (known.assignee || {}).id !== (f.assignee || {}).id)) {
    c.updated_at = now;
  }
  Object.assign(c, { status: f.status, assignee: f.assignee || null, tags: f.tags || c.tags || [] });
  if (typeof f.last_seq === "number" && f.last_seq > (c.last_seq || 0)) c.last_seq = f.last_seq;
  if (!known && f.id !== state.selected) c._unread = true;
  state.convs.set(f.id, c);
  renderList();
  if (f.id === state.selected) renderHead();
  scheduleRefresh(); // the API has the fields a frame lacks (visitor, timestamps)
}

// ------------------------------------------------------------------ thread

function closeThread() {
  state.selected = null;
  $("thread").hidden = true;
  $("no-thread").hidden = false;
}

async function openConv(id) {
  if (state.selected === id) return;
  if (state.selected) send({ type: "unwatch", conversation_id: state.selected });
  state.selected = id;
  state.seqs = new Map();
  state.lastSeq = 0;
  state.readSent = 0;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  $("no-thread").hidden = true;
  $("thread").hidden = false;
  const c = state.convs.get(id);
  if (c) c._unread = false;
  renderList();
  renderHead();
  for (const p of state.pending) if (p.conversation_id === id) $("messages").append(p.el);
  // Watch first, then read the history: whatever lands in between arrives live and
  // is deduplicated by seq. Without a socket, read now; the reconnect resumes.
  if (!send({ type: "watch", conversation_id: id })) await loadHistory(id);
  $("reply-body").focus();
}

async function loadHistory(id) {
  let after = 0;
  try {
    for (;;) {
      const q = new URLSearchParams({ after_seq: String(after), limit: "500" });
      const data = await api("GET", `/api/v1/conversations/${encodeURIComponent(id)}/messages?${q}`);
      if (state.selected !== id) return;
      data.items.forEach(addMessage);
      if (!data.next_cursor) break;
      after = Number(data.next_cursor);
    }
    markRead();
  } catch (e) {
    if (e.status !== 401) setConn("Could not load the conversation: " + e.message);
  }
}

function renderHead() {
  const c = state.convs.get(state.selected) || { id: state.selected, status: "open" };
  $("thread-title").textContent = visitorLabel(c);
  const bits = [c.status];
  bits.push(c.assignee ? "assigned to " + c.assignee.name : "unassigned");
  if (c.created_at) bits.push("started " + time(c.created_at));
  $("thread-meta").textContent = bits.join(" · ");
  const mine = c.assignee && state.me && c.assignee.id === state.me.id;
  $("assign").disabled = !!mine;
  $("assign").textContent = mine ? "Assigned to you" : "Assign to me";
  $("resolve").textContent = c.status === "resolved" ? "Reopen" : "Resolve";
}

function messageItem(m, mine) {
  const role = (m.author && m.author.role) || "agent";
  const li = el("li", "msg " + role + (m.kind === "note" ? " note" : "") + (m.kind === "event" ? " event" : ""));
  const meta = el("span", "meta");
  if (m.kind === "note") meta.append(el("span", "label", "Internal note"));
  const who =
    role === "visitor"
      ? visitorLabel({ visitor_id: m.author.id })
      : role === "system"
        ? "System"
        : mine
          ? "You"
          : (m.author && m.author.name) || "Agent";
  meta.append(who);
  const when = el("span", "when", m.ts ? " · " + time(m.ts) : "");
  meta.append(when);
  const st = el("span", "state");
  meta.append(st);
  const body = el("div", "text");
  linkify(body, m.body || "");
  li.append(meta, body);
  return li;
}

function place(li, seq) {
  const log = $("messages");
  li.dataset.seq = seq == null ? "" : String(seq);
  if (seq != null) {
    for (const c of log.children) {
      if (c.dataset.seq === "" || Number(c.dataset.seq) > seq) {
        log.insertBefore(li, c);
        log.scrollTop = log.scrollHeight;
        return;
      }
    }
  }
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

function addMessage(m) {
  if (m.conversation_id !== state.selected || state.seqs.has(m.seq)) return;
  const mine = m.author && m.author.role === "agent" && state.me && m.author.id === state.me.id;
  const li = messageItem(m, mine);
  state.seqs.set(m.seq, li);
  if (m.seq > state.lastSeq) state.lastSeq = m.seq;
  place(li, m.seq);
  if (m.author && m.author.role === "visitor") $("typing").textContent = "";
}

function markRead() {
  if (!state.selected || document.hidden || state.lastSeq <= state.readSent) return;
  if (send({ type: "read", conversation_id: state.selected, seq: state.lastSeq })) {
    state.readSent = state.lastSeq;
  }
}

// ------------------------------------------------------------------ replying

function showPending(p) {
  p.el.classList.toggle("failed", p.state === "failed");
  p.el.dataset.state = p.state;
  const st = p.el.querySelector(".state");
  st.replaceChildren();
  if (p.state === "acked") return;
  st.append(p.state === "failed" ? " · not sent " : " · sending…");
  if (p.state === "failed") {
    const retry = el("button", "secondary", "Retry");
    retry.type = "button";
    retry.addEventListener("click", () => {
      p.state = "queued";
      showPending(p);
      flush();
    });
    st.append(retry);
  }
}

function onReply(event) {
  event.preventDefault();
  const input = $("reply-body");
  const body = input.value;
  if (!body.trim() || !state.selected) return;
  const kind = $("note").checked ? "note" : "text";
  const p = {
    id: crypto.randomUUID(),
    conversation_id: state.selected,
    body,
    kind,
    state: "queued",
    el: null,
  };
  p.el = messageItem(
    { conversation_id: state.selected, body, kind, author: { role: "agent", id: state.me.id, name: state.me.name } },
    true,
  );
  showPending(p);
  place(p.el, null);
  state.pending.push(p);
  input.value = "";
  flush();
}

function flush() {
  for (const p of state.pending) {
    if (p.state !== "queued") continue;
    const frame = { type: "send", client_msg_id: p.id, conversation_id: p.conversation_id, body: p.body };
    if (p.kind === "note") frame.kind = "note";
    if (!send(frame)) return;
    p.state = "sent";
  }
}

function onAck(f) {
  const i = state.pending.findIndex((p) => p.id === f.client_msg_id);
  if (i < 0) return;
  const [p] = state.pending.splice(i, 1);
  p.state = "acked";
  if (f.conversation_id !== state.selected || state.seqs.has(f.seq)) {
    p.el.remove();
    return;
  }
  showPending(p);
  p.el.querySelector(".when").textContent = " · " + time(f.ts);
  state.seqs.set(f.seq, p.el);
  if (f.seq > state.lastSeq) state.lastSeq = f.seq;
  place(p.el, f.seq);
  const c = state.convs.get(f.conversation_id);
  if (c) {
    c.last_message_at = f.ts;
    renderList();
  }
}

function onError(f) {
  const p = f.ref && state.pending.find((x) => x.id === f.ref);
  if (p) {
    p.state = "failed";
    showPending(p);
  }
  setConn(f.message || f.code);
}

function onTypingInput() {
  if (!state.selected || $("note").checked) return;
  const now = Date.now();
  if (now - state.typingAt >= 2000) {
    state.typingAt = now;
    send({ type: "typing", conversation_id: state.selected, state: true });
  }
  clearTimeout(state.typingIdle);
  const id = state.selected;
  state.typingIdle = setTimeout(() => {
    send({ type: "typing", conversation_id: id, state: false });
    state.typingAt = 0;
  }, 3000);
}

function onTyping(f) {
  if (f.conversation_id !== state.selected || !f.author) return;
  if (f.author.role === "agent" && state.me && f.author.id === state.me.id) return;
  clearTimeout(state.typingHide);
  if (!f.state) {
    $("typing").textContent = "";
    return;
  }
  const who = f.author.role === "visitor" ? visitorLabel({ visitor_id: f.author.id }) : f.author.name || "An agent";
  $("typing").textContent = who + " is typing…";
  state.typingHide = setTimeout(() => {
    $("typing").textContent = "";
  }, 8000);
}

async function patch(changes) {
  const id = state.selected;
  if (!id) return;
  try {
    const c = await api("PATCH", `/api/v1/conversations/${encodeURIComponent(id)}`, changes);
    const prev = state.convs.get(id) || {};
    state.convs.set(id, { ...prev, ...c, _unread: false });
    renderList();
    if (state.selected === id) renderHead();
  } catch (e) {
    if (e.status !== 401) setConn("Could not update the conversation: " + e.message);
  }
}

// ------------------------------------------------------------------ socket

function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

function connect() {
  if (state.ws || !state.me) return;
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
  state.ws = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    state.attempt = 0;
    setConn("");
    send({ type: "subscribe", inbox: "all" });
    if (state.selected) {
      // Catch up on what was missed; resume also (re)starts watching.
      send({ type: "resume", conversation_id: state.selected, after_seq: state.lastSeq });
    }
    for (const p of state.pending) if (p.state === "sent") p.state = "queued";
    flush();
  };
  ws.onmessage = (ev) => {
    let f;
    try {
      f = JSON.parse(ev.data);
    } catch {
      return;
    }
    onFrame(f);
  };
  ws.onclose = async () => {
    if (state.ws !== ws) return;
    state.ws = null;
    document.body.dataset.socket = "offline";
    for (const p of state.pending) if (p.state === "sent") p.state = "queued";
    if (!state.me) return;
    if (!opened) {
      // Refused: maybe the session ended.
      try {
        await api("GET", "/console/me");
      } catch {
        if (!state.me) return;
      }
    }
    setConn("Offline, reconnecting…");
    const cap = Math.min(30000, 500 * 2 ** state.attempt++);
    clearTimeout(state.retry);
    state.retry = setTimeout(connect, 250 + Math.random() * cap);
  };
}

function onFrame(f) {
  switch (f.type) {
    case "subscribed":
      document.body.dataset.socket = "live"; // the inbox now updates live
      break;
    case "conversation":
      upsertConversation(f);
      break;
    case "message": {
      addMessage(f);
      const c = state.convs.get(f.conversation_id);
      if (c) {
        c.last_message_at = f.ts;
        if (f.conversation_id !== state.selected) c._unread = true;
        renderList();
      }
      markRead();
      break;
    }
    case "watching":
      if (f.conversation_id === state.selected) loadHistory(f.conversation_id);
      break;
    case "ack":
      onAck(f);
      break;
    case "error":
      onError(f);
      break;
    case "typing":
      onTyping(f);
      break;
    case "presence":
      if (f.agent) {
        if (f.status === "offline") state.online.delete(f.agent.id);
        else state.online.set(f.agent.id, f.agent.name);
        renderOnline();
      }
      break;
    default:
      break;
  }
}

function renderOnline() {
  const names = [...state.online.values()];
  $("online").textContent = names.length ? "Online: " + names.join(", ") : "";
}

// ------------------------------------------------------------------ wiring

function wire() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("status-filter").addEventListener("change", loadList);
  $("reply").addEventListener("submit", onReply);
  $("reply-body").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("reply").requestSubmit();
    }
  });
  $("reply-body").addEventListener("input", onTypingInput);
  $("note").addEventListener("change", () => {
    $("reply").classList.toggle("note-mode", $("note").checked);
    $("send").textContent = $("note").checked ? "Add note" : "Send";
  });
  $("assign").addEventListener("click", () => patch({ assignee_id: state.me.id }));
  $("resolve").addEventListener("click", () => {
    const c = state.convs.get(state.selected);
    patch({ status: c && c.status === "resolved" ? "open" : "resolved" });
  });
  document.addEventListener("visibilitychange", markRead);
}

async function boot() {
  wire();
  try {
    const data = await api("GET", "/console/me");
    start(data.agent);
  } catch (e) {
    showLogin(e.status === 401 ? "" : "Could not reach the server: " + e.message);
  }
}

boot();
