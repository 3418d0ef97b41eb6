// The agent console: sign in with the session cookie, an inbox that updates live,
// one thread at a time with replies and internal notes, the visitor panel, presence,
// admin pages and stats. Plain ES module, no build.
// User data only ever reaches the page through text nodes and DOM APIs (never innerHTML).

import { attachmentList } from "./attachments.js";
import { csatSection, hoursPage, ratingNote } from "./csat.js";
import { webhooksPage } from "./webhooks.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50; // history page size (messages)

const state = {
  me: null,
  convs: new Map(), // id -> conversation (as the API lists it)
  order: [], // ids in the list, as shown
  nextCursor: null,
  selected: null,
  current: null, // the open conversation (GET /conversations/{id})
  seqs: new Map(), // seq -> <li> of the open thread
  lastSeq: 0,
  histLow: null, // messages with seq > histLow are loaded (null: nothing yet)
  histLoading: false,
  readSent: 0,
  pending: [], // own replies not yet acked: {id, conversation_id, body, kind, el, state}
  presence: new Map(), // agent id -> {name, status}
  watched: new Set(), // conversations followed on the socket besides the open one (mine)
  ws: null,
  attempt: 0,
  retry: null,
  refresh: null,
  poll: null,
  typingAt: 0,
  typingIdle: null,
  typingHide: null,
  agents: null, // admin: GET /api/v1/agents
  canned: null, // GET /api/v1/canned-responses
  cannedIndex: 0,
  audio: null,
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
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    if (res.status === 401 && state.me && path !== "/console/login") signedOut(true);
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText);
  }
  return data;
}

const enc = encodeURIComponent;

// ------------------------------------------------------------------ helpers

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function button(text, onClick, cls) {
  const b = el("button", cls || "secondary small", text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
function linkify(parent, text) {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const url = m[0].replace(/[.,;:!?)\]}'"]+$/, "");
    if (!url || m.index < last) continue;
    parent.append(document.createTextNode(text.slice(last, m.index)));
    parent.append(safeLink(url, url));
    last = m.index + url.length;
  }
  parent.append(document.createTextNode(text.slice(last)));
}

function safeLink(url, text) {
  let ok = false;
  try {
    ok = ["http:", "https:"].includes(new URL(url).protocol);
  } catch {
    ok = false;
  }
  if (!ok) return el("span", null, text);
  const a = el("a", null, text);
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
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

function isAdmin() {
  return !!(state.me && state.me.role === "admin");
}

function inTextField(t) {
  if (!t || !t.tagName) return false;
  return ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) || t.isContentEditable;
}

// ------------------------------------------------------------------ sign-in

function showLogin(message) {
  $("booting").hidden = true;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  document.body.dataset.socket = "offline";
  document.body.dataset.signedIn = "false";
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
  const submit = event.submitter || $("login-form").querySelector("button");
  submit.disabled = true;
  try {
    const data = await api("POST", "/console/login", { email, password });
    $("password").value = "";
    start(data.agent);
  } catch (e) {
    $("login-error").textContent =
      e.status === 401
        ? "Wrong email or password."
        : "Could not sign in (" + e.code + "): " + e.message;
  } finally {
    submit.disabled = false;
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

function signedOut(expired, why) {
  if (!state.me && !expired) return showLogin("");
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
  state.watched = new Set();
  state.agents = null;
  state.canned = null;
  showLogin(expired ? why || "Your session ended. Sign in again." : "");
}

function start(agent) {
  state.me = agent;
  $("booting").hidden = true;
  $("login").hidden = true;
  $("app").hidden = false;
  document.body.dataset.signedIn = "true";
  document.body.dataset.role = agent.role;
  $("me").textContent = agent.name + " (" + agent.role + ")";
  for (const a of document.querySelectorAll(".admin-only")) a.hidden = !isAdmin();
  state.presence = new Map([[agent.id, { name: agent.name, status: "online" }]]);
  $("my-status").value = "online";
  renderOnline();
  loadOnlineAgents();
  updateNotifyButton();
  closeThread();
  route();
  loadList();
  connect();
  clearInterval(state.poll);
  // Conversation frames carry no timestamps or unread counts: re-read the list now and then.
  state.poll = setInterval(() => loadList(), 30000);
}

// ------------------------------------------------------------------ routing

function route() {
  if (!state.me) return;
  const hash = location.hash.replace(/^#/, "").split("?")[0] || "/";
  const parts = hash.split("/").filter(Boolean);
  for (const a of document.querySelectorAll(".pages a, .admin-tabs a")) {
    const current = a.getAttribute("href") === "#" + hash || (a.id === "nav-admin" && parts[0] === "admin");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (parts[0] === "admin" || parts[0] === "stats" || parts[0] === "account") {
    $("view-inbox").hidden = true;
    $("view-page").hidden = false;
    $("admin-tabs").hidden = parts[0] !== "admin" || !isAdmin();
    $("page-error").textContent = "";
    $("page-body").replaceChildren();
    const page = parts[0] === "admin" ? parts[1] || "agents" : parts[0];
    if (parts[0] === "admin" && !isAdmin()) {
      // Some admin data (the team list) is readable by agents for other uses;
      // the admin pages themselves are not theirs, whatever the API would answer.
      pageError(new ApiError(403, "forbidden", "the admin pages need the admin role"));
      return;
    }
    const fn = PAGES[page];
    if (!fn) {
      $("page-title").textContent = "Not found";
      $("page-error").textContent = "not_found: no such page";
      return;
    }
    fn().catch(pageError);
  } else {
    $("view-page").hidden = true;
    $("view-inbox").hidden = false;
    // #/c/<id>: one conversation (the links in offline-message emails).
    if (parts[0] === "c" && parts[1]) {
      let id = null;
      try {
        id = decodeURIComponent(parts[1]);
      } catch {
        id = null;
      }
      if (id) openConv(id, { keepFocus: true });
    }
  }
}

function pageError(e) {
  if (e instanceof ApiError) {
    $("page-error").textContent = `Error ${e.status} ${e.code}: ${e.message}`;
    $("page-error").dataset.code = e.code;
  } else {
    $("page-error").textContent = String(e && e.message ? e.message : e);
  }
}

// ------------------------------------------------------------------ inbox

function listQuery(cursor) {
  const q = new URLSearchParams({ limit: "50" });
  const view = $("view-filter").value;
  const status = $("status-filter").value;
  const tag = $("tag-filter").value.trim();
  const text = $("search").value.trim();
  if (view) q.set("assignee", view);
  if (status) q.set("status", status);
  if (tag) q.set("tag", tag);
  if (text) q.set("q", text);
  if (cursor) q.set("cursor", cursor);
  return q;
}

let listGen = 0;
async function loadList(more) {
  if (!state.me) return;
  const gen = ++listGen;
  $("conversations").setAttribute("aria-busy", "true");
  try {
    const pages = [];
    if (more) {
      // Counted when asked for: a refresh that starts before this page arrives
      // reloads it too, instead of shrinking the list back to what it saw.
      state.pages = (state.pages || 1) + 1;
      pages.push(await api("GET", "/api/v1/conversations?" + listQuery(state.nextCursor)));
    } else {
      // Reload as many pages as were shown (so a refresh does not shrink the list).
      const want = Math.max(1, state.pages || 1, Math.ceil(state.order.length / 50));
      let cursor = null;
      for (let i = 0; i < want; i++) {
        const data = await api("GET", "/api/v1/conversations?" + listQuery(cursor));
        pages.push(data);
        cursor = data.next_cursor;
        if (!cursor) break;
      }
    }
    if (gen !== listGen) return;
    if (!more) state.convs = new Map();
    for (const data of pages) {
      for (const c of data.items) state.convs.set(c.id, c);
      state.nextCursor = data.next_cursor;
    }
    state.order = [...state.convs.keys()];
    renderList();
    watchMine();
    if (state.selected) renderHead();
  } catch (e) {
    if (e.status !== 401) setConn(`Could not load conversations (${e.code}): ${e.message}`);
  } finally {
    if (gen === listGen) $("conversations").setAttribute("aria-busy", "false");
  }
}

function scheduleRefresh(ms) {
  clearTimeout(state.refresh);
  state.refresh = setTimeout(() => loadList(), ms == null ? 800 : ms);
}

function matchesFilter(c) {
  const status = $("status-filter").value;
  const view = $("view-filter").value;
  const tag = $("tag-filter").value.trim();
  if (status && c.status !== status) return false;
  if (view === "none" && c.assignee) return false;
  if (view === "me" && !(c.assignee && state.me && c.assignee.id === state.me.id)) return false;
  if (tag && !(c.tags || []).includes(tag)) return false;
  return true;
}

function visibleConvs() {
  return [...state.convs.values()]
    .filter((c) => matchesFilter(c) || c.id === state.selected)
    .sort((a, b) => (activity(a) < activity(b) ? 1 : activity(a) > activity(b) ? -1 : 0));
}

function renderList() {
  const ul = $("conversations");
  const items = visibleConvs();
  ul.replaceChildren(
    ...items.map((c) => {
      const li = el("li");
      const b = el("button");
      b.type = "button";
      b.dataset.id = c.id;
      b.dataset.status = c.status;
      if (c.id === state.selected) b.setAttribute("aria-current", "true");
      const who = el("span", "who");
      const name = el("span", null, visitorLabel(c));
      const right = el("span");
      const unread = c.unread || 0;
      if (unread > 0 && c.id !== state.selected) {
        const n = el("span", "unread", String(unread));
        n.setAttribute("aria-label", unread + " unread");
        n.title = unread + " unread";
        right.append(n, " ");
      }
      right.append(el("span", "badge " + c.status, c.status));
      who.append(name, right);
      const sub = el(
        "span",
        "sub",
        (c.assignee ? "Assigned to " + c.assignee.name : "Unassigned") + " · " + time(activity(c)),
      );
      b.append(who, sub);
      if (c.tags && c.tags.length) {
        const tags = el("span", "sub tags");
        for (const t of c.tags) tags.append(el("span", "tag", t));
        b.append(tags);
      }
      b.addEventListener("click", () => openConv(c.id));
      li.append(b);
      return li;
    }),
  );
  $("list-empty").hidden = items.length > 0;
  $("more").hidden = !state.nextCursor;
}

function upsertConversation(f) {
  const now = new Date().toISOString();
  const known = state.convs.get(f.id);
  const isNew = !known && f.last_seq <= 1;
  const c = known || {
    id: f.id,
    visitor_id: null,
    created_at: now,
    updated_at: now,
    last_message_at: now,
    unread: f.last_seq || 0,
  };
  if (known && (known.status !== f.status || (known.assignee || {}).id !== (f.assignee || {}).id)) {
    c.updated_at = now;
  }
  Object.assign(c, { status: f.status, assignee: f.assignee || null, tags: f.tags || c.tags || [] });
  if (typeof f.last_seq === "number" && f.last_seq > (c.last_seq || 0)) c.last_seq = f.last_seq;
  state.convs.set(f.id, c);
  renderList();
  if (f.id === state.selected) {
    if (state.current) Object.assign(state.current, { status: c.status, assignee: c.assignee, tags: c.tags });
    renderHead();
  }
  watchMine();
  if (isNew) notify("New conversation", "A visitor started a chat.", f.id);
  scheduleRefresh(); // the API has the fields a frame lacks (visitor, timestamps, unread)
}

// Follow the conversations assigned to me, for unread counts and notifications.
function watchMine() {
  if (!state.me) return;
  for (const c of state.convs.values()) {
    const mine = c.assignee && c.assignee.id === state.me.id && c.status !== "resolved";
    if (mine && !state.watched.has(c.id)) {
      state.watched.add(c.id);
      if (c.id !== state.selected) send({ type: "watch", conversation_id: c.id });
    } else if (!mine && state.watched.has(c.id)) {
      state.watched.delete(c.id);
      if (c.id !== state.selected) send({ type: "unwatch", conversation_id: c.id });
    }
  }
}

function moveSelection(delta) {
  const ids = visibleConvs().map((c) => c.id);
  if (!ids.length) return;
  let i = ids.indexOf(state.selected);
  i = i < 0 ? (delta > 0 ? 0 : ids.length - 1) : Math.min(ids.length - 1, Math.max(0, i + delta));
  openConv(ids[i]).then(() => {
    const b = document.querySelector(`#conversations button[data-id="${CSS.escape(ids[i])}"]`);
    if (b) b.focus();
  });
}

// ------------------------------------------------------------------ thread

function closeThread() {
  state.selected = null;
  state.current = null;
  $("thread").hidden = true;
  $("no-thread").hidden = false;
  $("visitor-body").replaceChildren("No conversation open.");
}

async function openConv(id, opts) {
  if (state.selected === id) return;
  if (!$("view-page").hidden) {
    location.hash = "#/";
  }
  const prev = state.selected;
  if (prev && !state.watched.has(prev)) send({ type: "unwatch", conversation_id: prev });
  state.selected = id;
  state.current = state.convs.get(id) ? { ...state.convs.get(id) } : { id, status: "open" };
  state.seqs = new Map();
  state.lastSeq = 0;
  state.histLow = null;
  state.readSent = 0;
  $("messages").replaceChildren();
  $("messages").dataset.complete = "false";
  $("typing").textContent = "";
  $("no-thread").hidden = true;
  $("thread").hidden = false;
  const c = state.convs.get(id);
  if (c) c.unread = 0;
  renderList();
  renderHead();
  for (const p of state.pending) if (p.conversation_id === id) $("messages").append(p.el);
  loadVisitor(id);
  api("GET", `/api/v1/conversations/${enc(id)}`)
    .then((conv) => {
      if (state.selected !== id) return;
      state.current = conv;
      const known = state.convs.get(id);
      if (known) Object.assign(known, conv, { unread: 0 });
      renderHead();
      // Without a socket the history is read here; with one, on `watching`.
      if (!state.ws || state.ws.readyState !== WebSocket.OPEN) loadNewest(id, conv.last_seq);
    })
    .catch((e) => {
      if (e.status !== 401) setConn(`Could not open the conversation (${e.code}): ${e.message}`);
    });
  // Watch first, then read the history: whatever lands in between arrives live and
  // is deduplicated by seq. The `watching` answer carries the last seq.
  send({ type: "watch", conversation_id: id }); // watching again answers the current position
  if (!(opts && opts.keepFocus)) $("reply-body").focus();
}

// History: the newest page first, then older pages when scrolled to the top.
async function loadNewest(id, lastSeq) {
  const low = Math.max(0, lastSeq - PAGE);
  state.histLow = lastSeq; // nothing older loaded yet
  await loadPage(id, low, lastSeq - low, true);
  markRead();
}

async function loadOlder() {
  const id = state.selected;
  if (!id || state.histLoading || state.histLow == null || state.histLow <= 0) return;
  const low = Math.max(0, state.histLow - PAGE);
  await loadPage(id, low, state.histLow - low, false);
}

async function loadPage(id, after, limit, bottom) {
  if (limit <= 0) {
    state.histLow = after;
    $("messages").dataset.complete = String(after <= 0);
    return;
  }
  state.histLoading = true;
  const log = $("messages");
  try {
    const q = new URLSearchParams({ after_seq: String(after), limit: String(limit) });
    const data = await api("GET", `/api/v1/conversations/${enc(id)}/messages?${q}`);
    if (state.selected !== id) return;
    const fromBottom = log.scrollHeight - log.scrollTop;
    for (const m of data.items) addMessage(m, true);
    state.histLow = after;
    log.dataset.complete = String(after <= 0);
    if (bottom) log.scrollTop = log.scrollHeight;
    else log.scrollTop = log.scrollHeight - fromBottom; // keep the reader's place
  } catch (e) {
    if (e.status !== 401) setConn(`Could not load the conversation (${e.code}): ${e.message}`);
  } finally {
    state.histLoading = false;
  }
  // A short first page may not fill the pane: keep loading until it scrolls.
  if (state.selected === id && state.histLow > 0 && log.scrollHeight <= log.clientHeight) loadOlder();
}

function renderHead() {
  const c = state.current || state.convs.get(state.selected) || { id: state.selected, status: "open" };
  $("thread-title").textContent = visitorLabel(c);
  const bits = [c.status];
  bits.push(c.assignee ? "assigned to " + c.assignee.name : "unassigned");
  if (c.created_at) bits.push("started " + time(c.created_at));
  $("thread-meta").textContent = bits.join(" · ");
  const tags = $("thread-tags");
  tags.replaceChildren(...(c.tags || []).map((t) => el("span", "tag", t)));
  if (document.activeElement !== $("tags-input")) $("tags-input").value = (c.tags || []).join(", ");
  const mine = c.assignee && state.me && c.assignee.id === state.me.id;
  $("assign").disabled = !!mine;
  $("assign").textContent = mine ? "Assigned to you" : "Assign to me";
  $("unassign").disabled = !c.assignee;
  $("conv-status").value = c.status || "open";
  $("resolve").textContent = c.status === "resolved" ? "Reopen" : "Resolve";
  ratingNote(c, H);
  // Any agent may transfer a conversation to a colleague.
  $("assign-other").hidden = false;
  renderAssignee(c);
  renderContact(c);
}

async function renderAssignee(c) {
  const sel = $("assignee");
  if (!state.agents) {
    state.agents = [];
    try {
      state.agents = (await api("GET", "/api/v1/agents")).items;
    } catch {
      state.agents = null;
      return;
    }
  }
  const opts = [el("option", null, "Assign to…")];
  opts[0].value = "";
  for (const a of state.agents) {
    if (!a.active || a.kind !== "human" || a.role === "compliance") continue;
    const o = el("option", null, a.name + (a.id === state.me.id ? " (me)" : ""));
    o.value = a.id;
    opts.push(o);
  }
  sel.replaceChildren(...opts);
  sel.value = (c.assignee && c.assignee.id) || "";
}

function messageItem(m, mine) {
  const role = (m.author && m.author.role) || "agent";
  const li = el("li", "msg " + role + (m.kind === "note" ? " note" : "") + (m.kind === "event" ? " event" : ""));
  const meta = el("span", "meta");
  if (m.kind === "note") meta.append(el("span", "label", "Internal note"));
  const who =
    role === "visitor"
      ? (m.author && m.author.name) || visitorLabel({ visitor_id: m.author.id })
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
  const files = attachmentList(m.attachments);
  if (files) li.append(files);
  return li;
}

function place(li, seq, history) {
  const log = $("messages");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  li.dataset.seq = seq == null ? "" : String(seq);
  let placed = false;
  if (seq != null) {
    for (const c of log.children) {
      if (c.dataset.seq === "" || Number(c.dataset.seq) > seq) {
        log.insertBefore(li, c);
        placed = true;
        break;
      }
    }
  }
  if (!placed) log.append(li);
  if (!history && (atBottom || seq == null)) log.scrollTop = log.scrollHeight;
}

function addMessage(m, history) {
  if (m.conversation_id !== state.selected || state.seqs.has(m.seq)) return;
  const mine = m.author && m.author.role === "agent" && state.me && m.author.id === state.me.id;
  const li = messageItem(m, mine);
  state.seqs.set(m.seq, li);
  if (m.seq > state.lastSeq) state.lastSeq = m.seq;
  place(li, m.seq, history);
  if (m.author && m.author.role === "visitor" && !history) $("typing").textContent = "";
}

function markRead() {
  if (!state.selected || document.hidden || state.lastSeq <= state.readSent) return;
  if (send({ type: "read", conversation_id: state.selected, seq: state.lastSeq })) {
    state.readSent = state.lastSeq;
  }
}

// ------------------------------------------------------------------ visitor panel

function row(dl, term, value) {
  if (value == null || value === "") return;
  dl.append(el("dt", null, term));
  const dd = el("dd");
  if (value instanceof Node) dd.append(value);
  else dd.textContent = String(value);
  dl.append(dd);
}

async function loadVisitor(id) {
  const box = $("visitor-body");
  box.className = "muted";
  box.replaceChildren("Loading…");
  let data;
  try {
    data = await api("GET", `/api/v1/conversations/${enc(id)}/visitor`);
  } catch (e) {
    if (state.selected === id) box.replaceChildren(`Error ${e.status} ${e.code}: ${e.message}`);
    return;
  }
  if (state.selected !== id) return;
  box.className = "";
  const parts = [];
  const conv = state.current || {};
  if (data.account) {
    const h = el("h3", null, "Account");
    const dl = el("dl", "facts");
    const name = el("span", null, data.account.name || "—");
    if (data.account.verified_by) {
      const by = String(data.account.verified_by);
      const badge = el("span", "verified", "Verified by " + (/bank.?id/i.test(by) ? "BankID" : by));
      name.append(" ", badge);
    }
    row(dl, "Name", name);
    row(dl, "Email", data.account.email);
    row(dl, "Phone", data.account.phone);
    parts.push(h, dl);
  } else {
    parts.push(el("p", "muted", "Anonymous visitor " + (data.visitor_id || "").slice(-6)));
  }
  const contact = el("p", "contact");
  contact.id = "contact-email";
  parts.push(contact);
  const s = (data.sessions || [])[0];
  if (s) {
    const dl = el("dl", "facts");
    dl.id = "visitor-session";
    row(dl, "Device", s.device_class);
    row(dl, "Browser", s.browser);
    row(dl, "OS", s.os);
    if (s.page_url || s.page_title) {
      const page = el("span");
      page.append(el("span", "page-title", s.page_title || s.page_url || ""));
      if (s.page_url) page.append(el("br"), safeLink(s.page_url, s.page_url));
      row(dl, "Page", page);
    }
    row(dl, "Referrer", s.referrer ? safeLink(s.referrer, s.referrer) : null);
    row(dl, "Locale", s.locale);
    row(dl, "Since", time(s.started_at));
    if ("ip" in s && s.ip) {
      const ip = el("span", "ip", s.ip);
      ip.id = "visitor-ip";
      row(dl, "IP", ip);
    }
    parts.push(el("h3", null, "Latest session"), dl);
  }
  const others = data.conversations || [];
  parts.push(el("h3", null, "Earlier conversations"));
  if (others.length) {
    const ul = el("ul", "earlier");
    for (const o of others) {
      const li = el("li");
      li.append(button(`${time(o.created_at)} · ${o.status}`, () => openConv(o.id)));
      ul.append(li);
    }
    parts.push(ul);
  } else parts.push(el("p", "muted", "None."));
  box.replaceChildren(...parts);
  renderContact(conv);
}

function renderContact(c) {
  const p = $("contact-email");
  if (!p) return;
  p.replaceChildren();
  if (c && c.contact_email) {
    p.append("Contact email (offline message): ");
    const a = el("a", null, c.contact_email);
    a.href = "mailto:" + c.contact_email;
    p.append(a);
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
    st.append(
      button("Retry", () => {
        p.state = "queued";
        showPending(p);
        flush();
      }),
    );
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
  closeCanned();
  if (state.typingAt) {
    clearTimeout(state.typingIdle);
    send({ type: "typing", conversation_id: state.selected, state: false });
    state.typingAt = 0;
  }
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
  markRead();
}

function onError(f) {
  const p = f.ref && state.pending.find((x) => x.id === f.ref);
  if (p) {
    p.state = "failed";
    showPending(p);
  }
  if (f.code === "unauthorized" && !f.ref) {
    // Deactivated (or demoted): the server closes the socket; so does the console.
    signedOut(true, "You were signed out (" + f.code + "): " + (f.message || ""));
    return;
  }
  setConn(`${f.code}: ${f.message || ""}`);
}

function onTypingInput() {
  updateCanned();
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
    const c = await api("PATCH", `/api/v1/conversations/${enc(id)}`, changes);
    const prev = state.convs.get(id);
    if (prev) Object.assign(prev, c, { unread: 0 });
    else state.convs.set(id, { ...c, unread: 0 });
    if (state.selected === id) state.current = { ...(state.current || {}), ...c };
    renderList();
    watchMine();
    if (state.selected === id) renderHead();
  } catch (e) {
    if (e.status !== 401) setConn(`Could not update the conversation (${e.code}): ${e.message}`);
  }
}

// ------------------------------------------------------------------ canned responses

async function updateCanned() {
  const v = $("reply-body").value;
  const m = /^\/([a-z0-9_-]*)$/i.exec(v);
  if (!m) return closeCanned();
  if (!state.canned) {
    state.canned = [];
    try {
      state.canned = (await api("GET", "/api/v1/canned-responses")).items;
    } catch (e) {
      state.canned = null;
      setConn(`Could not load canned responses (${e.code}): ${e.message}`);
      return;
    }
  }
  const prefix = m[1].toLowerCase();
  const found = state.canned.filter((c) => c.shortcut.startsWith(prefix));
  const ul = $("canned");
  if (!found.length) return closeCanned();
  state.cannedIndex = Math.min(state.cannedIndex, found.length - 1);
  ul.replaceChildren(
    ...found.map((c, i) => {
      const li = el("li", "canned-item");
      li.id = "canned-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === state.cannedIndex));
      li.dataset.body = c.body;
      li.append(el("strong", null, "/" + c.shortcut), " ", el("span", "muted", c.body.slice(0, 80)));
      li.addEventListener("mousedown", (e) => {
        e.preventDefault();
        insertCanned(c.body);
      });
      return li;
    }),
  );
  ul.hidden = false;
  $("reply-body").setAttribute("aria-activedescendant", "canned-" + state.cannedIndex);
}

function closeCanned() {
  $("canned").hidden = true;
  $("canned").replaceChildren();
  state.cannedIndex = 0;
  $("reply-body").removeAttribute("aria-activedescendant");
}

function insertCanned(body) {
  $("reply-body").value = body;
  closeCanned();
  $("reply-body").focus();
}

function onReplyKey(e) {
  const list = $("canned");
  if (!list.hidden) {
    const items = [...list.children];
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      state.cannedIndex = (state.cannedIndex + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
      items.forEach((li, i) => li.setAttribute("aria-selected", String(i === state.cannedIndex)));
      $("reply-body").setAttribute("aria-activedescendant", "canned-" + state.cannedIndex);
      return;
    }
    if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      insertCanned(items[state.cannedIndex].dataset.body);
      return;
    }
    if (e.key === "Escape") {
      e.preventDefault();
      closeCanned();
      return;
    }
  }
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("reply").requestSubmit();
  }
}

// ------------------------------------------------------------------ notifications

function updateNotifyButton() {
  const b = $("notify");
  if (!("Notification" in window)) {
    b.hidden = true;
    return;
  }
  b.hidden = Notification.permission !== "default";
}

function beep() {
  try {
    const ctx = state.audio || (state.audio = new AudioContext());
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.25);
  } catch {
    // no audio
  }
}

function notify(title, body, conversationId) {
  if (!document.hidden) return;
  beep();
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      const n = new Notification(title, { body, tag: conversationId });
      n.onclick = () => {
        window.focus();
        openConv(conversationId);
        n.close();
      };
    } catch {
      // not allowed here
    }
  }
}

// ------------------------------------------------------------------ presence

function renderOnline() {
  const list = [...state.presence.values()].filter((p) => p.status !== "offline");
  const box = $("online");
  box.replaceChildren();
  if (!list.length) return;
  box.append("Online: ");
  list.forEach((p, i) => {
    if (i) box.append(", ");
    const s = el("span", "agent " + p.status, p.name + (p.status === "away" ? " (away)" : ""));
    box.append(s);
  });
}

// Presence frames say who is here; the list also fills in from /api/v1/agents at once.
async function loadOnlineAgents() {
  try {
    state.agents = (await api("GET", "/api/v1/agents")).items;
  } catch {
    return;
  }
  for (const a of state.agents) {
    if (a.online && a.kind === "human" && !state.presence.has(a.id)) {
      state.presence.set(a.id, { name: a.name, status: "online" });
    }
  }
  renderOnline();
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
    send({ type: "hello" });
    send({ type: "subscribe", inbox: "all" });
    if ($("my-status").value === "away") send({ type: "status", status: "away" });
    for (const id of state.watched) if (id !== state.selected) send({ type: "watch", conversation_id: id });
    if (state.selected) {
      if (state.histLow == null) send({ type: "watch", conversation_id: state.selected });
      // Catch up on what was missed; resume also (re)starts watching.
      else send({ type: "resume", conversation_id: state.selected, after_seq: state.lastSeq });
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
    setConn("Disconnected, reconnecting…");
    // Maybe the session ended (deactivated, expired): then show the sign-in.
    try {
      await api("GET", "/console/me");
    } catch {
      if (!state.me) return;
    }
    if (!opened) setConn("Offline, reconnecting…");
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
    case "welcome":
      if (f.agent) {
        state.presence.set(f.agent.id, { name: f.agent.name, status: $("my-status").value });
        renderOnline();
      }
      break;
    case "conversation":
      upsertConversation(f);
      break;
    case "erased":
      // The person was erased (P7): their conversations leave the console too.
      for (const id of f.conversation_ids || []) {
        state.convs.delete(id);
        if (state.selected === id) closeThread();
      }
      renderList();
      break;
    case "message": {
      addMessage(f);
      const c = state.convs.get(f.conversation_id);
      if (c) {
        c.last_message_at = f.ts;
        if (f.conversation_id !== state.selected) c.unread = (c.unread || 0) + 1;
        renderList();
      }
      const mine = c && c.assignee && state.me && c.assignee.id === state.me.id;
      if (mine && f.author && f.author.role === "visitor") {
        notify("New message", (f.body || "").slice(0, 120), f.conversation_id);
      }
      if (f.conversation_id === state.selected) markRead();
      break;
    }
    case "watching":
      if (f.conversation_id === state.selected && state.histLow == null) loadNewest(f.conversation_id, f.last_seq);
      break;
    case "resumed":
      if (f.conversation_id === state.selected) markRead();
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
        if (f.status === "offline") state.presence.delete(f.agent.id);
        else state.presence.set(f.agent.id, { name: f.agent.name, status: f.status });
        renderOnline();
      }
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------------ admin pages

function table(headers, rows) {
  const t = el("table", "grid");
  const thead = el("thead");
  const tr = el("tr");
  for (const h of headers) {
    const th = el("th", null, h);
    th.scope = "col";
    tr.append(th);
  }
  thead.append(tr);
  const tbody = el("tbody");
  for (const r of rows) {
    const tr2 = el("tr");
    for (const cell of r) {
      const td = el("td");
      if (cell instanceof Node) td.append(cell);
      else td.textContent = cell == null ? "" : String(cell);
      tr2.append(td);
    }
    tbody.append(tr2);
  }
  t.append(thead, tbody);
  return t;
}

// A small form: fields [{name, label, type, options, required}]; onSubmit(values) -> Promise.
function form(id, fields, submitText, onSubmit) {
  const f = el("form", "admin-form");
  f.id = id;
  for (const fd of fields) {
    const wrap = el("div", "field");
    const label = el("label", null, fd.label);
    const inputId = id + "-" + fd.name;
    label.htmlFor = inputId;
    let input;
    if (fd.options) {
      input = el("select");
      for (const o of fd.options) {
        const opt = el("option", null, o);
        opt.value = o;
        input.append(opt);
      }
    } else if (fd.type === "textarea") {
      input = el("textarea");
      input.rows = 3;
    } else {
      input = el("input");
      input.type = fd.type || "text";
      input.autocomplete = "off";
    }
    input.id = inputId;
    input.name = fd.name;
    if (fd.required) input.required = true;
    if (fd.value != null) input.value = fd.value;
    wrap.append(label, input);
    f.append(wrap);
  }
  const submit = el("button", null, submitText);
  submit.type = "submit";
  const err = el("p", "error");
  err.setAttribute("role", "alert");
  f.append(submit, err);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = {};
    for (const fd of fields) values[fd.name] = f.elements[fd.name].value;
    submit.disabled = true;
    err.textContent = "";
    try {
      await onSubmit(values, f);
    } catch (x) {
      err.textContent = x instanceof ApiError ? `Error ${x.status} ${x.code}: ${x.message}` : String(x);
    } finally {
      submit.disabled = false;
    }
  });
  return f;
}

function pageHead(title) {
  $("page-title").textContent = title;
  $("page-body").replaceChildren();
}

function agentsFailed(e) {
  // Show the refusal (a 409 for one's own account, say) and the agents as they are.
  agentsPage().then(() => pageError(e), pageError);
}

async function agentsPage() {
  pageHead("Agents");
  const data = await api("GET", "/api/v1/agents");
  state.agents = data.items;
  const roles = ["agent", "admin", "compliance"];
  const rows = data.items.map((a) => {
    const role = el("select");
    role.setAttribute("aria-label", "Role of " + a.name);
    for (const r of roles) {
      const o = el("option", null, r);
      o.value = r;
      role.append(o);
    }
    role.value = a.role;
    role.addEventListener("change", () =>
      api("PATCH", `/api/v1/agents/${enc(a.id)}`, { role: role.value }).then(agentsPage, agentsFailed),
    );
    const active = el("input");
    active.type = "checkbox";
    active.checked = a.active;
    active.setAttribute("aria-label", "Active: " + a.name);
    active.addEventListener("change", () =>
      api("PATCH", `/api/v1/agents/${enc(a.id)}`, { active: active.checked }).then(agentsPage, agentsFailed),
    );
    const name = el("input");
    name.value = a.name;
    name.maxLength = 200;
    name.setAttribute("aria-label", "Name of " + a.name);
    const rename = button("Save name", () => {
      if (name.value.trim() && name.value.trim() !== a.name) {
        api("PATCH", `/api/v1/agents/${enc(a.id)}`, { name: name.value.trim() }).then(agentsPage, agentsFailed);
      }
    });
    rename.setAttribute("aria-label", "Save name of " + a.name);
    const nameCell = el("span", "row-actions");
    nameCell.append(name, " ", rename);
    return [nameCell, a.email || "", a.kind, role, active, a.online ? "yes" : "no"];
  });
  const add = form(
    "add-agent",
    [
      { name: "email", label: "Email", type: "email", required: true },
      { name: "name", label: "Name", required: true },
      { name: "password", label: "Password", type: "password", required: true },
      { name: "role", label: "Role", options: roles },
    ],
    "Add agent",
    async (v) => {
      await api("POST", "/api/v1/agents", v);
      await agentsPage();
    },
  );
  $("page-body").replaceChildren(
    table(["Name", "Email", "Kind", "Role", "Active", "Online"], rows),
    el("h3", null, "Add an agent"),
    add,
  );
}

async function tokensPage(fresh) {
  pageHead("API tokens");
  const data = await api("GET", "/api/v1/tokens");
  const parts = [];
  if (fresh) {
    const box = el("div", "secret");
    box.setAttribute("role", "status");
    box.append(el("strong", null, "New token (shown only once, copy it now): "));
    const code = el("code", null, fresh);
    code.id = "new-token";
    box.append(code);
    parts.push(box);
  }
  const rows = data.items.map((t) => [
    t.agent.name,
    t.agent.role,
    time(t.created_at),
    t.revoked_at ? "revoked " + time(t.revoked_at) : "active",
    t.revoked_at
      ? ""
      : button("Revoke", () => {
          if (confirm("Revoke the token of " + t.agent.name + "?")) {
            api("DELETE", `/api/v1/tokens/${enc(t.id)}`).then(() => tokensPage(), pageError);
          }
        }),
  ]);
  parts.push(
    table(["Bot", "Role", "Created", "State", ""], rows),
    el("h3", null, "Create a token"),
    form(
      "add-token",
      [
        { name: "name", label: "Bot name", required: true },
        { name: "role", label: "Role", options: ["agent", "admin", "compliance"] },
      ],
      "Create token",
      async (v) => {
        const made = await api("POST", "/api/v1/tokens", v);
        await tokensPage(made.token);
      },
    ),
  );
  $("page-body").replaceChildren(...parts);
}

async function cannedPage() {
  pageHead("Canned responses");
  const data = await api("GET", "/api/v1/canned-responses");
  state.canned = data.items;
  const rows = data.items.map((c) => {
    const body = el("textarea");
    body.value = c.body;
    body.rows = 2;
    body.setAttribute("aria-label", "Body of /" + c.shortcut);
    return [
      "/" + c.shortcut,
      body,
      el("span", null, time(c.updated_at)),
      el("span", "row-actions"),
    ].map((x, i) => {
      if (i === 3) {
        x.append(
          button("Save", () =>
            api("PUT", `/api/v1/canned-responses/${enc(c.id)}`, { shortcut: c.shortcut, body: body.value }).then(
              cannedPage,
              pageError,
            ),
          ),
          " ",
          button("Delete", () => {
            if (confirm("Delete /" + c.shortcut + "?")) {
              api("DELETE", `/api/v1/canned-responses/${enc(c.id)}`).then(cannedPage, pageError);
            }
          }),
        );
      }
      return x;
    });
  });
  $("page-body").replaceChildren(
    table(["Shortcut", "Body", "Updated", ""], rows),
    el("h3", null, "Add a canned response"),
    form(
      "add-canned",
      [
        { name: "shortcut", label: "Shortcut (a-z, 0-9, _ and -)", required: true },
        { name: "body", label: "Body", type: "textarea", required: true },
      ],
      "Add canned response",
      async (v) => {
        await api("POST", "/api/v1/canned-responses", v);
        await cannedPage();
      },
    ),
  );
}

async function policiesPage() {
  pageHead("Privacy policy versions");
  const data = await api("GET", "/api/v1/policies");
  const items = data.items || data;
  const rows = items.map((p) => [p.version, p.url ? safeLink(p.url, p.url) : "", time(p.published_at), p.current ? "current" : ""]);
  $("page-body").replaceChildren(
    table(["Version", "URL", "Published", ""], rows),
    el("h3", null, "Publish a new version"),
    el("p", "muted", "It is current at once: every visitor is asked to accept it again."),
    form(
      "add-policy",
      [
        { name: "version", label: "Version", required: true },
        { name: "url", label: "URL", required: true },
      ],
      "Publish",
      async (v) => {
        await api("POST", "/api/v1/policies", v);
        await policiesPage();
      },
    ),
  );
}

async function originsPage() {
  pageHead("Allowed origins");
  const data = await api("GET", "/api/v1/origins");
  const rows = data.items.map((o) => [
    o.origin,
    o.source,
    o.source === "admin"
      ? button("Remove", () =>
          api("DELETE", "/api/v1/origins?" + new URLSearchParams({ origin: o.origin })).then(originsPage, pageError),
        )
      : "",
  ]);
  $("page-body").replaceChildren(
    table(["Origin", "Source", ""], rows),
    el("h3", null, "Allow an origin"),
    form("add-origin", [{ name: "origin", label: "Origin (https://host[:port])", required: true }], "Add origin", async (v) => {
      await api("POST", "/api/v1/origins", v);
      await originsPage();
    }),
  );
}

// ------------------------------------------------------------------ stats

function fmtCount(n) {
  return n == null ? "<5" : String(n);
}

function fmtDuration(s) {
  // A duration over fewer than 5 conversations is withheld (P10): say why, not "<5".
  if (s == null) return "— (under 5 conversations)";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function barChart(days) {
  const w = 640;
  const h = 160;
  const n = Math.max(1, days.length);
  const max = Math.max(1, ...days.map((d) => d.conversations || 0));
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h + 20}`, width: "100%", role: "img", class: "bars" });
  const title = svg("title");
  title.textContent = "Conversations per day";
  chart.append(title);
  const bw = w / n;
  days.forEach((d, i) => {
    const v = d.conversations;
    const bh = v == null ? 4 : v === 0 ? 0 : Math.max(2, (v / max) * h);
    if (v === 0) return;
    const r = svg("rect", {
      x: i * bw + 1,
      y: h - bh,
      width: Math.max(1, bw - 2),
      height: bh,
      class: v == null ? "suppressed" : "bar",
    });
    const t = svg("title");
    t.textContent = `${d.day}: ${fmtCount(v)}`;
    r.append(t);
    chart.append(r);
  });
  chart.append(svg("line", { x1: 0, y1: h, x2: w, y2: h, class: "axis" }));
  return chart;
}

async function statsPage() {
  pageHead("Stats");
  const today = new Date();
  const iso = (d) => d.toISOString().slice(0, 10);
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const to = q.get("to") || iso(today);
  const start = q.get("from") || iso(new Date(today.getTime() - 29 * 86400000));
  const pick = form(
    "stats-range",
    [
      { name: "from", label: "From", type: "date", value: start },
      { name: "to", label: "To", type: "date", value: to },
    ],
    "Show",
    async (v) => {
      location.hash = "#/stats?" + new URLSearchParams({ from: v.from, to: v.to });
    },
  );
  pick.classList.add("inline");
  $("page-body").replaceChildren(pick);
  const s = await api("GET", "/api/v1/stats?" + new URLSearchParams({ from: start, to }));
  const summary = el("dl", "facts stats-summary");
  summary.id = "stats-summary";
  row(summary, "Conversations", fmtCount(s.conversations));
  row(summary, "First response, median", fmtDuration(s.first_response_seconds && s.first_response_seconds.median));
  row(summary, "First response, p90", fmtDuration(s.first_response_seconds && s.first_response_seconds.p90));
  row(summary, "Resolution, median", fmtDuration(s.resolution_seconds && s.resolution_seconds.median));
  const days = s.conversations_per_day || [];
  // The API lists the days that had conversations; the chart shows every day of the range.
  const byDay = new Map(days.map((d) => [d.day, d.conversations]));
  const allDays = [];
  for (let d = new Date((s.from || start) + "T00:00:00Z"); d.toISOString().slice(0, 10) <= (s.to || to); ) {
    const day = d.toISOString().slice(0, 10);
    allDays.push({ day, conversations: byDay.has(day) ? byDay.get(day) : 0 });
    d = new Date(d.getTime() + 86400000);
    if (allDays.length > 400) break;
  }
  const chartWrap = el("div", "chart");
  chartWrap.append(barChart(allDays));
  const axis = el("p", "muted axis-labels");
  axis.append(el("span", null, allDays.length ? allDays[0].day : ""), el("span", null, allDays.length ? allDays[allDays.length - 1].day : ""));
  chartWrap.append(axis);
  const perDay = table(
    ["Day", "Conversations"],
    days.map((d) => [d.day, fmtCount(d.conversations)]),
  );
  perDay.id = "stats-days";
  const devices = table(
    ["Device", "Sessions"],
    (s.device_mix || []).map((d) => [d.device_class || "unknown", fmtCount(d.sessions)]),
  );
  devices.id = "stats-devices";
  const perDayBox = el("div", "chart-row");
  perDayBox.append(chartWrap, perDay);
  $("page-body").append(
    summary,
    el("h3", null, "Conversations per day"),
    perDayBox,
    el("h3", null, "Device mix"),
    devices,
    csatSection(s.csat, H),
    el(
      "p",
      "muted",
      `Counts under ${s.suppressed_below || 5} are shown as "<5", and times over fewer ` +
        "conversations are not shown (P10).",
    ),
  );
  $("page-body").dataset.loaded = "stats";
}

async function accountPage() {
  pageHead("My account");
  const me = state.me;
  const dl = el("dl", "facts");
  row(dl, "Name", me.name);
  row(dl, "Email", me.email);
  row(dl, "Role", me.role);
  const done = el("p", "ok");
  done.setAttribute("role", "status");
  $("page-body").replaceChildren(
    dl,
    el("h3", null, "Change password"),
    form(
      "change-password",
      [
        { name: "current", label: "Current password", type: "password", required: true },
        { name: "new", label: "New password (at least 8 characters)", type: "password", required: true },
      ],
      "Change password",
      async (v, f) => {
        done.textContent = "";
        await api("POST", "/console/password", { current: v.current, new: v.new });
        f.reset();
        done.textContent = "Password changed.";
      },
    ),
    done,
  );
}

const PAGES = {
  account: accountPage,
  agents: agentsPage,
  tokens: () => tokensPage(null),
  canned: cannedPage,
  policies: policiesPage,
  origins: originsPage,
  stats: statsPage,
  hours: () => hoursPage(H),
  webhooks: () => webhooksPage(H),
};

// The console's helpers, for the pages that live in modules of their own (csat.js).
const H = { api, el, table, row, form, time, $ };

// ------------------------------------------------------------------ wiring

function onShortcut(e) {
  if (!state.me || e.ctrlKey || e.metaKey || e.altKey || inTextField(e.target)) return;
  if ($("shortcuts").open && e.key !== "?") return;
  if (!$("view-inbox").hidden || e.key === "?") {
    if (e.key === "j") moveSelection(1);
    else if (e.key === "k") moveSelection(-1);
    else if (e.key === "a" && state.selected) patch({ assignee_id: state.me.id });
    else if (e.key === "e" && state.selected) patch({ status: "resolved" });
    else if (e.key === "?") {
      const d = $("shortcuts");
      if (d.open) d.close();
      else d.showModal();
    } else return;
    e.preventDefault();
  }
}

function wire() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("status-filter").addEventListener("change", () => resetList());
  $("view-filter").addEventListener("change", () => resetList());
  let t = null;
  const debounced = () => {
    clearTimeout(t);
    t = setTimeout(resetList, 300);
  };
  $("tag-filter").addEventListener("input", debounced);
  $("search").addEventListener("input", debounced);
  $("more").addEventListener("click", () => loadList(true));
  $("reply").addEventListener("submit", onReply);
  $("reply-body").addEventListener("keydown", onReplyKey);
  $("reply-body").addEventListener("input", onTypingInput);
  $("reply-body").addEventListener("blur", () => setTimeout(closeCanned, 150));
  $("note").addEventListener("change", () => {
    $("reply").classList.toggle("note-mode", $("note").checked);
    $("send").textContent = $("note").checked ? "Add note" : "Send";
  });
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop < 60) loadOlder();
  });
  $("assign").addEventListener("click", () => patch({ assignee_id: state.me.id }));
  $("unassign").addEventListener("click", () => patch({ assignee_id: null }));
  $("assignee").addEventListener("change", () => {
    const v = $("assignee").value;
    if (v) patch({ assignee_id: v });
  });
  $("conv-status").addEventListener("change", () => patch({ status: $("conv-status").value }));
  $("resolve").addEventListener("click", () => {
    const c = state.current || state.convs.get(state.selected);
    patch({ status: c && c.status === "resolved" ? "open" : "resolved" });
  });
  $("tags-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const tags = $("tags-input")
      .value.split(",")
      .map((x) => x.trim())
      .filter(Boolean);
    patch({ tags });
  });
  $("my-status").addEventListener("change", () => {
    const status = $("my-status").value;
    send({ type: "status", status });
    if (state.me) {
      state.presence.set(state.me.id, { name: state.me.name, status });
      renderOnline();
    }
  });
  $("notify").addEventListener("click", async () => {
    if (!state.audio) {
      try {
        state.audio = new AudioContext(); // unlocked by this click
      } catch {
        state.audio = null;
      }
    }
    if ("Notification" in window) await Notification.requestPermission();
    updateNotifyButton();
  });
  $("help").addEventListener("click", () => $("shortcuts").showModal());
  document.addEventListener("keydown", onShortcut);
  document.addEventListener("visibilitychange", markRead);
  window.addEventListener("hashchange", route);
}

function resetList() {
  state.order = [];
  state.pages = 1;
  state.nextCursor = null;
  loadList();
}

async function boot() {
  wire();
  try {
    const data = await api("GET", "/console/me");
    start(data.agent);
  } catch (e) {
    showLogin(e.status === 401 ? "" : `Could not reach the server (${e.code}): ${e.message}`);
  }
}

boot();
