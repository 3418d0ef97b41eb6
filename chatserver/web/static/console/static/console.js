// The agent console: sign in with the session cookie, an inbox that updates live,
// one thread at a time with replies, notes and files, the visitor panel, presence.
// Plain ES module, no build. The admin, stats and account pages are in pages.js.
// User data only ever reaches the page through text nodes and DOM APIs (never innerHTML).

import { attachmentList } from "./attachments.js";
import { ApiError, $, api, button, el, enc, errorText, hooks, linkify, row, safeLink, time } from "./core.js";
import { ratingNote, whenInZone } from "./csat.js";
import { setLanguage, t, tn, translatePage } from "./i18n.js";
import { PAGES, ctx, pageError } from "./pages.js";
import { Uploads } from "./uploads.js";

const PAGE = 50; // history page size (messages)
const DEFAULT_PREFS = {
  language: null,
  sound: true,
  desktop: true,
  notify: { new_conversation: true, new_message_mine: true, assigned_to_me: true },
};

const state = {
  me: null,
  prefs: DEFAULT_PREFS,
  convs: new Map(), // id -> conversation (as the API lists it)
  nextCursor: null,
  pages: 1,
  selected: null,
  current: null, // the open conversation (GET /conversations/{id})
  seqs: new Map(), // seq -> <li> of the open thread
  lastSeq: 0,
  histLow: null, // messages with seq > histLow are loaded (null: nothing yet)
  histLoading: false,
  readSent: 0,
  visitorRead: 0, // the visitor's read seq in the open thread ("Seen")
  jumpTo: null, // a search hit's seq to scroll to once loaded
  pending: [], // own replies not yet acked: {id, conversation_id, body, kind, attachments, el, state}
  presence: new Map(), // agent id -> {name, status}
  watched: new Set(), // conversations followed on the socket besides the open one (waiting ones)
  statusUntouched: true, // the status filter is still the default (a search then spans all)
  hours: null, // GET /api/v1/business-hours, for the inbox's "Closed now" line
  countsTimer: null,
  counts: null,
  ws: null,
  live: false,
  attempt: 0,
  retry: null,
  refresh: null,
  poll: null,
  typingAt: 0,
  typingIdle: null,
  typingHide: null,
  agents: null,
  canned: null,
  cannedIndex: 0,
  audio: null,
};
ctx.state = state;
ctx.applyPreferences = applyPreferences;

// ------------------------------------------------------------------ helpers

function displayName(c) {
  if (c && c.name) return c.name;
  const id = (c && c.visitor_id) || "";
  return id ? t("visitor.anonymous", { id: id.slice(-6) }) : t("visitor.unknown");
}

function idpName(by) {
  const s = String(by || "");
  return /bank.?id/i.test(s) ? "BankID" : s;
}

function verifiedBadge(by) {
  const b = el("span", "verified-badge", t("visitor.verified", { idp: idpName(by) }));
  b.title = t("visitor.verified_title", { idp: idpName(by) });
  return b;
}

function activity(c) {
  return c.last_message_at || c.updated_at || c.created_at || "";
}

function isAdmin() {
  return !!(state.me && state.me.role === "admin");
}

function inTextField(x) {
  if (!x || !x.tagName) return false;
  return ["INPUT", "TEXTAREA", "SELECT"].includes(x.tagName) || x.isContentEditable;
}

function statusText(s) {
  return t("status." + s);
}

// A value the server names (a device class, say) in the console's words, or as it is.
function label(prefix, value) {
  const key = prefix + "." + value;
  const s = t(key);
  return s === key ? value : s;
}

// ------------------------------------------------------------------ panes (tablet, phone)

// One pane at a time on a phone (list, thread, visitor); a drawer for the visitor on a tablet.
function setPane(pane) {
  document.body.dataset.pane = pane;
  if (pane !== "visitor") closeDrawer(false);
}

function openDetails() {
  if (window.matchMedia("(max-width: 700px)").matches) setPane("visitor");
  document.body.dataset.drawer = "visitor";
  $("show-visitor").setAttribute("aria-expanded", "true");
  $("close-visitor").focus();
}

function closeDrawer(focus) {
  const was = document.body.dataset.drawer === "visitor";
  delete document.body.dataset.drawer;
  $("show-visitor").setAttribute("aria-expanded", "false");
  if (document.body.dataset.pane === "visitor") document.body.dataset.pane = "thread";
  if (was && focus !== false) $("show-visitor").focus();
}

// ------------------------------------------------------------------ sign-in

function showLogin(message) {
  $("booting").hidden = true;
  $("app").hidden = true;
  if ($("invite")) $("invite").remove();
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  document.body.dataset.socket = "offline";
  document.body.dataset.signedIn = "false";
  document.title = t("app.title") + " · chatserver";
  $("email").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  if (!email || !password) {
    $("login-error").textContent = t("login.missing");
    return;
  }
  const submit = event.submitter || $("login-form").querySelector("button");
  submit.disabled = true;
  try {
    const data = await api("POST", "/console/login", { email, password });
    $("password").value = "";
    start(data.agent, data.preferences || data.agent.preferences);
  } catch (e) {
    $("login-error").textContent = e.status === 401 ? t("login.wrong") : errorText(e);
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
  showLogin(expired ? why || t("login.expired") : "");
}
hooks.unauthorized = () => {
  if (state.me) signedOut(true);
};

// The invitee's page (#/invite/<token>): choose a password, then the console opens.
async function showInvite(token) {
  $("booting").hidden = true;
  $("app").hidden = true;
  $("login").hidden = true;
  // Made from its template only here, so the sign-in page has one password field.
  if (!$("invite")) {
    $("login").after($("invite-template").content.cloneNode(true));
    translatePage($("invite"));
  }
  $("invite-error").textContent = "";
  let inv;
  try {
    inv = await api("POST", "/console/invitations/lookup", { token });
  } catch (e) {
    $("invite-intro").textContent = "";
    $("invite-form").querySelector("button").disabled = true;
    $("invite-error").textContent = e.status === 404 ? t("invite.gone") : errorText(e);
    return;
  }
  $("invite-form").querySelector("button").disabled = false;
  $("invite-intro").textContent = t("invite.intro", { email: inv.email, role: t("role." + inv.role) });
  $("invite-name").value = inv.name || "";
  $("invite-form").onsubmit = async (event) => {
    event.preventDefault();
    const password = $("invite-password").value;
    if (!password) {
      $("invite-error").textContent = t("error.field.required", { field: t("invite.password") });
      return;
    }
    const submit = $("invite-form").querySelector("button");
    submit.disabled = true;
    try {
      const data = await api("POST", "/console/invitations/accept", {
        token,
        password,
        name: $("invite-name").value.trim() || undefined,
      });
      $("invite-password").value = "";
      history.replaceState(null, "", "#/");
      start(data.agent, data.preferences || data.agent.preferences);
    } catch (e) {
      $("invite-error").textContent = errorText(e, { password: t("invite.password"), name: t("invite.name") });
    } finally {
      submit.disabled = false;
    }
  };
  $("invite-password").focus();
}

function applyPreferences(prefs) {
  state.prefs = { ...DEFAULT_PREFS, ...(prefs || {}), notify: { ...DEFAULT_PREFS.notify, ...((prefs && prefs.notify) || {}) } };
  setLanguage(state.prefs.language);
  if (state.me) {
    renderMe();
    renderOnline();
    renderConn();
    renderList();
    renderCounts();
    renderHours();
    if (state.selected) {
      renderHead();
      rerenderThread();
      loadVisitor(state.selected);
    }
  }
}

function renderMe() {
  $("me").textContent = state.me.name + " (" + t("role." + state.me.role) + ")";
}

function start(agent, prefs) {
  state.me = agent;
  $("booting").hidden = true;
  $("login").hidden = true;
  if ($("invite")) $("invite").remove();
  $("app").hidden = false;
  document.body.dataset.signedIn = "true";
  document.body.dataset.role = agent.role;
  for (const a of document.querySelectorAll(".admin-only")) a.hidden = !isAdmin();
  state.presence = new Map([[agent.id, { name: agent.name, status: "online" }]]);
  $("my-status").value = "online";
  applyPreferences(prefs);
  loadOnlineAgents();
  updateNotifyButton();
  closeThread();
  setPane("list");
  route();
  loadList();
  connect();
  clearInterval(state.poll);
  // Frames carry what changed; the list (times, previews, counts) is re-read now and then.
  state.poll = setInterval(() => {
    loadList();
    loadHours();
  }, 30000);
  loadHours();
}

// ------------------------------------------------------------------ routing

function route() {
  const hash = location.hash.replace(/^#/, "").split("?")[0] || "/";
  const parts = hash.split("/").filter(Boolean);
  if (parts[0] === "invite" && parts[1] && !state.me) return showInvite(parts[1]);
  if (!state.me) return;
  for (const a of document.querySelectorAll(".top-nav a, .page-tabs a")) {
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
      $("page-title").textContent = t("nav.admin");
      pageError(new ApiError(403, "forbidden", "the admin pages need the admin role"));
      return;
    }
    const fn = PAGES[page];
    if (!fn) {
      $("page-title").textContent = t("page.not_found");
      $("page-error").textContent = t("page.not_found_text");
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

// ------------------------------------------------------------------ inbox

// The statuses asked for ("" for all): a search covers every status unless one was
// chosen on purpose.
function statusChoice() {
  return $("search").value.trim() && state.statusUntouched ? "" : $("status-filter").value;
}

function listQuery(cursor) {
  const q = new URLSearchParams({ limit: "50" });
  const view = $("view-filter").value;
  const text = $("search").value.trim();
  const status = statusChoice();
  const tag = $("tag-filter").value.trim();
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
  loadCounts();
  try {
    const pages = [];
    if (more) {
      // Counted when asked for: a refresh that starts before this page arrives
      // reloads it too, instead of shrinking the list back to what it saw.
      state.pages = (state.pages || 1) + 1;
      pages.push(await api("GET", "/api/v1/conversations?" + listQuery(state.nextCursor)));
    } else {
      const want = Math.max(1, state.pages || 1);
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
    renderList();
    watchMine();
    if (state.selected) renderHead();
  } catch (e) {
    if (e.status !== 401) setConnNote(t("error.load_list", { why: errorText(e) }));
  } finally {
    if (gen === listGen) $("conversations").setAttribute("aria-busy", "false");
  }
}

// Outside business hours the inbox says so, and when the chat opens (in the schedule's
// zone, with the agent's own time beside it).
async function loadHours() {
  let h;
  try {
    h = await api("GET", "/api/v1/business-hours");
  } catch {
    $("hours-line").hidden = true;
    return;
  }
  state.hours = h;
  renderHours();
}

function renderHours() {
  const h = state.hours;
  const line = $("hours-line");
  if (!h || !h.enabled || h.open_now) {
    line.hidden = true;
    return;
  }
  line.textContent =
    t("hours.closed_now") + (h.next_change ? " · " + t("hours.opens", { when: whenInZone(h.next_change, h.time_zone) }) : "");
  line.hidden = false;
}

async function loadCounts() {
  const q = new URLSearchParams();
  const tag = $("tag-filter").value.trim();
  if (tag) q.set("tag", tag);
  try {
    state.counts = await api("GET", "/api/v1/conversations/counts?" + q);
  } catch {
    return;
  }
  renderCounts();
}

function renderCounts() {
  const c = state.counts;
  const views = (c && c.views) || {};
  for (const o of $("view-filter").options) {
    const key = o.value === "" ? "all" : o.value === "me" ? "mine" : "unassigned";
    o.textContent = t("view." + key) + (key in views ? ` (${views[key]})` : "");
  }
  const st = (c && c.status) || {};
  $("status-counts").textContent =
    c && c.status ? ["open", "pending", "resolved"].map((s) => `${statusText(s)}: ${st[s] || 0}`).join(" · ") : "";
  const unread = (c && c.unread) || 0;
  document.title = (unread ? `(${unread}) ` : "") + t("app.title") + " · chatserver";
  setFavicon(unread);
}

// The tab's icon carries the unread count, so a background tab shows the work waiting.
function setFavicon(n) {
  const label = n > 99 ? "99+" : String(n);
  const badge = n
    ? `<circle cx="23" cy="9" r="9" fill="#c62828"/><text x="23" y="13" font-size="${label.length > 2 ? 8 : 11}" text-anchor="middle" fill="#fff" font-family="sans-serif" font-weight="700">${label}</text>`
    : "";
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="2" y="6" width="24" height="18" rx="5" fill="#1f5fbf"/>` +
    `<path d="M8 24l-2 6 7-6z" fill="#1f5fbf"/>${badge}</svg>`;
  const link = $("favicon");
  link.href = "data:image/svg+xml," + encodeURIComponent(svg);
  link.dataset.unread = String(n);
}

function scheduleRefresh(ms) {
  clearTimeout(state.refresh);
  state.refresh = setTimeout(() => loadList(), ms == null ? 800 : ms);
}

function matchesFilter(c) {
  const statuses = statusChoice().split(",").filter(Boolean);
  const view = $("view-filter").value;
  const tag = $("tag-filter").value.trim();
  if (statuses.length && !statuses.includes(c.status)) return false;
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

function snippetInto(parent, parts) {
  for (const p of parts || []) {
    if (p.hit) parent.append(el("mark", null, p.text));
    else parent.append(document.createTextNode(p.text));
  }
}

function previewOf(c) {
  const span = el("span", "inbox-preview");
  if (c.match && c.match.snippet) {
    span.dataset.kind = "match";
    snippetInto(span, c.match.snippet);
    return span;
  }
  const m = c.last_message;
  if (!m) {
    span.append(el("span", "muted", t("inbox.no_messages")));
    return span;
  }
  span.dataset.kind = m.kind;
  if (m.kind === "note") span.append(el("span", "inbox-preview-label", t("inbox.note_prefix")), " ");
  let text = m.preview || "";
  if (!text && m.attachments) text = tn("inbox.files", m.attachments);
  if (m.role === "agent" && m.kind !== "note") text = t("inbox.agent_said", { text });
  span.append(text);
  return span;
}

function renderList() {
  const ul = $("conversations");
  const items = visibleConvs();
  ul.replaceChildren(
    ...items.map((c) => {
      const li = el("li");
      const b = el("button", "inbox-row");
      b.type = "button";
      b.dataset.id = c.id;
      b.dataset.status = c.status;
      if (c.id === state.selected) b.setAttribute("aria-current", "true");
      const top = el("span", "inbox-row-top");
      const name = el("span", "inbox-name", displayName(c));
      const when = el("span", "inbox-time", time((c.last_message && c.last_message.ts) || activity(c)));
      top.append(name, when);
      const bottom = el("span", "inbox-row-bottom");
      const meta = el("span", "inbox-meta", c.assignee ? t("inbox.assigned_to", { name: c.assignee.name }) : t("inbox.unassigned"));
      const flags = el("span", "inbox-flags");
      if (c.verified_by) flags.append(verifiedBadge(c.verified_by));
      const unread = c.unread || 0;
      if (unread > 0 && c.id !== state.selected) {
        const n = el("span", "inbox-unread unread", String(unread));
        n.setAttribute("aria-label", tn("inbox.unread", unread));
        n.title = tn("inbox.unread", unread);
        flags.append(n);
      }
      const badge = el("span", "status-badge", statusText(c.status));
      badge.dataset.status = c.status;
      flags.append(badge);
      bottom.append(meta, flags);
      b.append(top, previewOf(c), bottom);
      if (c.tags && c.tags.length) {
        const tags = el("span", "inbox-tags");
        for (const x of c.tags) tags.append(el("span", "tag-chip", x));
        b.append(tags);
      }
      b.addEventListener("click", () => openConv(c.id, { jump: c.match ? c.match.seq : null }));
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
  const wasMine = !!(known && known.assignee && state.me && known.assignee.id === state.me.id);
  if (known && (known.status !== f.status || (known.assignee || {}).id !== (f.assignee || {}).id)) {
    c.updated_at = now;
  }
  Object.assign(c, { status: f.status, assignee: f.assignee || null, tags: f.tags || c.tags || [] });
  for (const k of ["name", "verified_by", "rating"]) if (k in f) c[k] = f[k];
  if (typeof f.last_seq === "number" && f.last_seq > (c.last_seq || 0)) c.last_seq = f.last_seq;
  state.convs.set(f.id, c);
  renderList();
  if (f.id === state.selected) {
    // Verified (or renamed) just now: the panel and the visitor's earlier lines change.
    const renamed = "name" in f && !!state.current && f.name !== state.current.name;
    if (state.current) {
      Object.assign(state.current, { status: c.status, assignee: c.assignee, tags: c.tags });
      for (const k of ["name", "verified_by", "rating"]) if (k in f) state.current[k] = f[k];
    }
    renderHead();
    if (renamed) {
      loadVisitor(f.id);
      rerenderThread(); // the visitor's earlier lines now carry their verified name
    }
  }
  watchMine();
  const mine = !!(c.assignee && state.me && c.assignee.id === state.me.id);
  if (isNew && state.prefs.notify.new_conversation) {
    notify(t("notify.new_conversation"), t("notify.new_conversation_body"), f.id);
  } else if (mine && !wasMine && known && f.id !== state.selected && state.prefs.notify.assigned_to_me) {
    notify(t("notify.assigned"), displayName(c), f.id);
  }
  scheduleRefresh(); // the API has the fields a frame lacks (visitor, preview, unread)
}

// Follow every conversation in the list that still waits (open or pending), so its
// preview, time and unread count move as messages arrive; resolved ones are let go.
const WATCH_MAX = 200;
function watchMine() {
  if (!state.me) return;
  const want = new Set();
  for (const c of state.convs.values()) {
    if (c.status !== "resolved" && want.size < WATCH_MAX) want.add(c.id);
  }
  for (const id of want) {
    if (state.watched.has(id)) continue;
    state.watched.add(id);
    if (id !== state.selected) send({ type: "watch", conversation_id: id });
  }
  for (const id of [...state.watched]) {
    if (want.has(id)) continue;
    state.watched.delete(id);
    if (id !== state.selected) send({ type: "unwatch", conversation_id: id });
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
  $("visitor-body").replaceChildren(t("panel.none"));
  uploads.reset(null);
}

async function openConv(id, opts) {
  const jump = opts && opts.jump;
  if (state.selected === id) {
    setPane("thread");
    if (jump) scrollToSeq(jump);
    return;
  }
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
  state.visitorRead = 0;
  state.jumpTo = jump || null;
  $("messages").replaceChildren();
  $("messages").dataset.complete = "false";
  $("typing").textContent = "";
  $("no-thread").hidden = true;
  $("thread").hidden = false;
  setPane("thread");
  uploads.reset(id);
  const c = state.convs.get(id);
  if (c && c.unread && state.counts && state.counts.unread) {
    // Read now: the tab's count drops at once; the next counts reading confirms it.
    state.counts.unread = Math.max(0, state.counts.unread - c.unread);
    renderCounts();
  }
  if (c) c.unread = 0;
  renderList();
  renderHead();
  for (const p of state.pending) if (p.conversation_id === id) $("messages").append(p.el);
  loadVisitor(id);
  api("GET", `/api/v1/conversations/${enc(id)}`)
    .then((conv) => {
      if (state.selected !== id) return;
      state.current = conv;
      if (conv.visitor_read_seq) setVisitorRead(conv.visitor_read_seq);
      const known = state.convs.get(id);
      if (known) Object.assign(known, conv, { unread: 0 });
      renderHead();
      // Without a socket the history is read here; with one, on `watching`.
      if (!state.ws || state.ws.readyState !== WebSocket.OPEN) loadNewest(id, conv.last_seq);
    })
    .catch((e) => {
      if (e.status !== 401) setConnNote(t("error.open_conversation", { why: errorText(e) }));
    });
  // Watch first, then read the history: whatever lands in between arrives live and
  // is deduplicated by seq. The `watching` answer carries the last seq.
  send({ type: "watch", conversation_id: id }); // watching again answers the current position
  if (!(opts && opts.keepFocus)) $("reply-body").focus();
}

// History: the newest page first (or the page around a search hit), then older pages
// when scrolled to the top.
async function loadNewest(id, lastSeq) {
  const jump = state.jumpTo;
  const low = jump && jump < lastSeq - PAGE ? Math.max(0, jump - 10) : Math.max(0, lastSeq - PAGE);
  state.histLow = lastSeq; // nothing older loaded yet
  await loadPage(id, low, lastSeq - low, !jump);
  if (jump && state.selected === id) scrollToSeq(jump);
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
    const items = [];
    let from = after;
    // The API answers at most 500 a page; a jump to an old hit may need several.
    while (items.length < limit) {
      const q = new URLSearchParams({ after_seq: String(from), limit: String(Math.min(500, limit - items.length)) });
      const data = await api("GET", `/api/v1/conversations/${enc(id)}/messages?${q}`);
      items.push(...data.items);
      if (!data.next_cursor || !data.items.length) break;
      from = data.items[data.items.length - 1].seq;
    }
    if (state.selected !== id) return;
    const fromBottom = log.scrollHeight - log.scrollTop;
    for (const m of items) addMessage(m, true);
    state.histLow = after;
    log.dataset.complete = String(after <= 0);
    if (bottom) log.scrollTop = log.scrollHeight;
    else log.scrollTop = log.scrollHeight - fromBottom; // keep the reader's place
    renderSeen();
  } catch (e) {
    if (e.status !== 401) setConnNote(t("error.load_thread", { why: errorText(e) }));
  } finally {
    state.histLoading = false;
  }
  // A short first page may not fill the pane: keep loading until it scrolls.
  if (state.selected === id && state.histLow > 0 && log.scrollHeight <= log.clientHeight) loadOlder();
}

function scrollToSeq(seq) {
  const li = state.seqs.get(seq);
  if (!li) return;
  state.jumpTo = null;
  for (const x of $("messages").querySelectorAll(".is-hit")) x.classList.remove("is-hit");
  li.classList.add("is-hit");
  li.scrollIntoView({ block: "center" });
  li.tabIndex = -1;
  li.focus({ preventScroll: true });
}

function renderHead() {
  const c = state.current || state.convs.get(state.selected) || { id: state.selected, status: "open" };
  const title = $("thread-title");
  title.replaceChildren(displayName(c));
  if (c.verified_by) title.append(" ", verifiedBadge(c.verified_by));
  const bits = [statusText(c.status)];
  bits.push(c.assignee ? t("thread.assigned_to", { name: c.assignee.name }) : t("thread.unassigned"));
  if (c.created_at) bits.push(t("thread.started", { when: time(c.created_at) }));
  $("thread-meta").textContent = bits.join(" · ");
  const tags = $("thread-tags");
  tags.replaceChildren(...(c.tags || []).map((x) => el("span", "tag-chip", x)));
  if (document.activeElement !== $("tags-input")) $("tags-input").value = (c.tags || []).join(", ");
  const mine = c.assignee && state.me && c.assignee.id === state.me.id;
  $("assign").disabled = !!mine;
  $("assign").textContent = mine ? t("thread.assigned_you") : t("thread.assign_me");
  $("unassign").disabled = !c.assignee;
  $("conv-status").value = c.status || "open";
  $("resolve").textContent = c.status === "resolved" ? t("thread.reopen") : t("thread.resolve");
  ratingNote(c, { api, el, t, $ });
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
  const opts = [el("option", null, t("thread.assign_to_option"))];
  opts[0].value = "";
  for (const a of state.agents) {
    if (!a.active || a.kind !== "human" || a.role === "compliance") continue;
    const o = el("option", null, a.name + (a.id === state.me.id ? " " + t("thread.me_suffix") : ""));
    o.value = a.id;
    opts.push(o);
  }
  sel.replaceChildren(...opts);
  sel.value = (c.assignee && c.assignee.id) || "";
}

function person(p) {
  return (p && p.name) || t("event.someone");
}

// An event line in the agent's language, from the event's data; the stored English
// body is the fallback for an event type this console does not know.
function eventText(m) {
  const e = m.event;
  if (!e || !e.type) return m.body || "";
  const by = e.by ? person(e.by) : null;
  const key = "event." + e.type + (by ? "_by" : "");
  const vars = {
    to: person(e.to),
    from: person(e.from),
    by,
    score: e.score,
    idp: idpName(e.idp),
    name: e.name || "",
    status: e.status ? statusText(e.status) : "",
  };
  const s = t(key, vars);
  return s === key ? m.body || e.type : s;
}

function messageItem(m, mine) {
  const role = (m.author && m.author.role) || "agent";
  const li = el("li", "thread-msg msg");
  li.dataset.role = role;
  li.dataset.kind = m.kind || "text";
  if (m.message_id) li.dataset.id = m.message_id;
  if (m.kind === "event") {
    const text = el("span", "thread-msg-text", eventText(m));
    const when = el("span", "thread-msg-when when", m.ts ? " · " + time(m.ts) : "");
    li.append(text, when);
    return li;
  }
  const meta = el("span", "thread-msg-meta meta");
  if (m.kind === "note") meta.append(el("span", "thread-msg-label", t("thread.note_label")));
  const who =
    role === "visitor"
      ? (m.author && m.author.name) || (state.current && state.current.name) || displayName({ visitor_id: m.author && m.author.id })
      : role === "system"
        ? t("thread.system")
        : mine
          ? t("thread.you")
          : (m.author && m.author.name) || t("thread.agent");
  meta.append(who);
  meta.append(el("span", "thread-msg-when when", m.ts ? " · " + time(m.ts) : ""));
  meta.append(el("span", "thread-msg-state state"));
  const body = el("div", "thread-msg-text text");
  linkify(body, m.body || "");
  li.append(meta);
  if (m.body) li.append(body);
  const files = attachmentList(m.attachments, t);
  if (files) {
    files.classList.add("thread-msg-files");
    li.append(files);
  }
  return li;
}

function rerenderThread() {
  // The language changed: event lines and labels are drawn again from what is known.
  for (const [seq, li] of state.seqs) {
    if (!li._message) continue;
    const fresh = messageItem(li._message, li._mine);
    fresh._message = li._message;
    fresh._mine = li._mine;
    fresh.dataset.seq = String(seq);
    li.replaceWith(fresh);
    state.seqs.set(seq, fresh);
  }
  renderSeen();
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
  li._message = m;
  li._mine = mine;
  state.seqs.set(m.seq, li);
  if (m.seq > state.lastSeq) state.lastSeq = m.seq;
  place(li, m.seq, history);
  if (m.author && m.author.role === "visitor" && !history) $("typing").textContent = "";
  if (!history && state.jumpTo === m.seq) scrollToSeq(m.seq);
}

// "Seen" under the newest agent message the visitor has read (their `read` frames).
function setVisitorRead(seq) {
  if (seq > state.visitorRead) {
    state.visitorRead = seq;
    renderSeen();
  }
}

function renderSeen() {
  for (const x of $("messages").querySelectorAll(".thread-msg-seen")) x.remove();
  if (!state.visitorRead) return;
  let best = null;
  for (const [seq, li] of state.seqs) {
    if (seq <= state.visitorRead && li.dataset.role === "agent" && li.dataset.kind === "text" && (!best || seq > best[0])) {
      best = [seq, li];
    }
  }
  if (best) {
    const seen = el("span", "thread-msg-seen", t("thread.seen"));
    seen.dataset.seq = String(best[0]);
    best[1].append(seen);
  }
}

function markRead() {
  if (!state.selected || document.hidden || state.lastSeq <= state.readSent) return;
  if (send({ type: "read", conversation_id: state.selected, seq: state.lastSeq })) {
    state.readSent = state.lastSeq;
    clearTimeout(state.countsTimer);
    state.countsTimer = setTimeout(loadCounts, 1000);
  }
}

// ------------------------------------------------------------------ visitor panel

async function loadVisitor(id) {
  const box = $("visitor-body");
  box.classList.add("muted");
  box.replaceChildren(t("panel.loading"));
  let data;
  try {
    data = await api("GET", `/api/v1/conversations/${enc(id)}/visitor`);
  } catch (e) {
    if (state.selected === id) box.replaceChildren(errorText(e));
    return;
  }
  if (state.selected !== id) return;
  box.classList.remove("muted");
  const parts = [];
  const conv = state.current || {};
  if (data.account) {
    const h = el("h3", null, t("panel.account"));
    const dl = el("dl", "facts");
    const name = el("span", null, data.account.name || "—");
    if (data.account.verified_by) name.append(" ", verifiedBadge(data.account.verified_by));
    row(dl, t("field.name"), name);
    row(dl, t("field.email"), data.account.email);
    row(dl, t("field.phone"), data.account.phone);
    parts.push(h, dl);
  } else {
    parts.push(el("p", "muted", t("panel.anonymous", { id: (data.visitor_id || "").slice(-6) })));
  }
  const contact = el("p", "panel-contact");
  contact.id = "contact-email";
  parts.push(contact);
  const s = (data.sessions || [])[0];
  if (s) {
    const dl = el("dl", "facts");
    dl.id = "visitor-session";
    row(dl, t("panel.device"), s.device_class ? label("device", s.device_class) : null);
    row(dl, t("panel.browser"), s.browser);
    row(dl, t("panel.os"), s.os);
    if (s.page_url || s.page_title) {
      const page = el("span");
      page.append(el("span", "page-title", s.page_title || s.page_url || ""));
      if (s.page_url) page.append(el("br"), safeLink(s.page_url, s.page_url));
      row(dl, t("panel.page"), page);
    }
    row(dl, t("panel.referrer"), s.referrer ? safeLink(s.referrer, s.referrer) : null);
    row(dl, t("panel.locale"), s.locale);
    row(dl, t("panel.since"), time(s.started_at));
    if ("ip" in s && s.ip) {
      const ip = el("span", "ip", s.ip);
      ip.id = "visitor-ip";
      row(dl, t("panel.ip"), ip);
    }
    parts.push(el("h3", null, t("panel.session")), dl);
  }
  const others = data.conversations || [];
  parts.push(el("h3", null, t("panel.earlier")));
  if (others.length) {
    const ul = el("ul", "panel-earlier earlier");
    for (const o of others) {
      const li = el("li");
      li.append(button(`${time(o.created_at)} · ${statusText(o.status)}`, () => openConv(o.id)));
      ul.append(li);
    }
    parts.push(ul);
  } else parts.push(el("p", "muted", t("panel.none_earlier")));
  box.replaceChildren(...parts);
  renderContact(conv);
}

function renderContact(c) {
  const p = $("contact-email");
  if (!p) return;
  p.replaceChildren();
  if (c && c.contact_email) {
    p.append(t("panel.contact_email") + " ");
    const a = el("a", null, c.contact_email);
    a.href = "mailto:" + c.contact_email;
    p.append(a);
  }
}

// ------------------------------------------------------------------ replying

const uploads = new Uploads({
  list: () => $("composer-files"),
  error: (text) => {
    $("composer-error").textContent = text;
  },
  conversation: () => state.selected,
});

function showPending(p) {
  p.el.dataset.state = p.state;
  const st = p.el.querySelector(".thread-msg-state");
  st.replaceChildren();
  if (p.state === "acked") return;
  st.append(p.state === "failed" ? " · " + t("thread.not_sent") + " " : " · " + t("thread.sending"));
  if (p.state === "failed") {
    st.append(
      button(t("thread.retry"), () => {
        p.state = "queued";
        showPending(p);
        flush();
      }),
    );
  }
}

async function onReply(event) {
  event.preventDefault();
  const input = $("reply-body");
  const body = input.value;
  if (!state.selected) return;
  if (uploads.busy()) {
    $("composer-error").textContent = t("composer.wait_uploads");
    return;
  }
  const files = uploads.ready();
  if (!body.trim() && !files.length) return;
  $("composer-error").textContent = "";
  const kind = $("note").checked ? "note" : "text";
  const p = {
    id: crypto.randomUUID(),
    conversation_id: state.selected,
    body,
    kind,
    attachments: files.map((f) => f.id),
    state: "queued",
    el: null,
  };
  p.el = messageItem(
    {
      conversation_id: state.selected,
      body,
      kind,
      attachments: files.map((f) => f.meta),
      author: { role: "agent", id: state.me.id, name: state.me.name },
    },
    true,
  );
  showPending(p);
  place(p.el, null);
  state.pending.push(p);
  input.value = "";
  uploads.reset(state.selected);
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
    if (p.attachments && p.attachments.length) frame.attachments = p.attachments;
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
  p.el.querySelector(".thread-msg-when").textContent = " · " + time(f.ts);
  p.el._message = {
    conversation_id: f.conversation_id,
    message_id: f.message_id,
    seq: f.seq,
    ts: f.ts,
    body: p.body,
    kind: p.kind,
    author: { role: "agent", id: state.me.id, name: state.me.name },
  };
  p.el._mine = true;
  state.seqs.set(f.seq, p.el);
  if (f.seq > state.lastSeq) state.lastSeq = f.seq;
  place(p.el, f.seq);
  const c = state.convs.get(f.conversation_id);
  if (c) {
    c.last_message_at = f.ts;
    c.last_message = { seq: f.seq, kind: p.kind, role: "agent", preview: p.body.split("\n")[0].slice(0, 140), ts: f.ts };
    renderList();
  }
  markRead();
  renderSeen();
}

function onError(f) {
  const p = f.ref && state.pending.find((x) => x.id === f.ref);
  if (p) {
    p.state = "failed";
    showPending(p);
    $("composer-error").textContent = errorText(new ApiError(0, f.code, f.message));
  }
  if (f.code === "unauthorized" && !f.ref) {
    // Deactivated (or demoted): the server closes the socket; so does the console.
    signedOut(true, t("login.signed_out"));
    return;
  }
  if (!p) setConnNote(errorText(new ApiError(0, f.code, f.message)));
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
  const who = f.author.role === "visitor" ? displayName(state.current || { visitor_id: f.author.id }) : f.author.name || t("thread.agent");
  $("typing").textContent = t("thread.typing", { name: who });
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
    loadCounts();
    if (state.selected === id) renderHead();
  } catch (e) {
    if (e.status !== 401) setConnNote(t("error.update_conversation", { why: errorText(e) }));
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
      $("composer-error").textContent = errorText(e);
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
      const li = el("li", "composer-canned-item canned-item");
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
  if (!state.prefs.sound) return;
  try {
    const ac = state.audio || (state.audio = new AudioContext());
    const osc = ac.createOscillator();
    const gain = ac.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, ac.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, ac.currentTime + 0.25);
    osc.connect(gain).connect(ac.destination);
    osc.start();
    osc.stop(ac.currentTime + 0.25);
  } catch {
    // no audio
  }
}

// A toast in the page while the tab is visible; a sound and a desktop notification
// (when allowed) while it is not.
function notify(title, body, conversationId) {
  if (!document.hidden) {
    toast(title + (body ? ": " + body : ""), conversationId);
    return;
  }
  beep();
  if (state.prefs.desktop && "Notification" in window && Notification.permission === "granted") {
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

function toast(text, conversationId) {
  const box = el("div", "toast");
  box.setAttribute("role", "status");
  box.append(el("span", null, text));
  if (conversationId) {
    box.append(
      button(t("toast.open"), () => {
        box.remove();
        openConv(conversationId);
      }),
    );
  }
  const close = button("×", () => box.remove());
  close.setAttribute("aria-label", t("toast.dismiss"));
  box.append(close);
  $("toasts").append(box);
  setTimeout(() => box.remove(), 8000);
}

// ------------------------------------------------------------------ presence and connection

function renderOnline() {
  const list = [...state.presence.entries()].filter(([, p]) => p.status !== "offline");
  const box = $("online");
  box.replaceChildren();
  if (!state.live) {
    // Without the socket nobody's presence is known, our own included.
    box.append(t("presence.unknown"));
    return;
  }
  if (!list.length) return;
  box.append(t("presence.online_list") + " ");
  list.forEach(([, p], i) => {
    if (i) box.append(", ");
    const s = el("span", "agent", p.name + (p.status === "away" ? " " + t("presence.away_suffix") : ""));
    s.dataset.status = p.status;
    box.append(s);
  });
}

let connNote = "";
function setConnNote(text) {
  connNote = text || "";
  renderConn();
}

// The banner: why the console is not live, and that replies wait to be sent.
function renderConn() {
  const banner = $("conn-banner");
  let text = "";
  let kind = "info";
  if (state.me && !state.live) {
    const queued = state.pending.filter((p) => p.state !== "acked").length;
    text = t("conn.offline") + (queued ? " " + tn("conn.queued", queued) : "");
    kind = "offline";
  } else if (connNote) {
    text = connNote;
  }
  $("conn").textContent = text;
  banner.dataset.kind = kind;
  banner.hidden = !text;
}

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

function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

function setLive(live) {
  state.live = live;
  document.body.dataset.socket = live ? "live" : "offline";
  renderOnline();
  renderConn();
}

function connect() {
  if (state.ws || !state.me) return;
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
  state.ws = ws;
  ws.onopen = () => {
    state.attempt = 0;
    connNote = "";
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
    for (const p of state.pending) if (p.state === "sent") p.state = "queued";
    setLive(false);
    if (!state.me) return;
    // Maybe the session ended (deactivated, expired): then show the sign-in.
    try {
      await api("GET", "/console/me");
    } catch {
      if (!state.me) return;
    }
    const cap = Math.min(30000, 500 * 2 ** state.attempt++);
    clearTimeout(state.retry);
    state.retry = setTimeout(connect, 250 + Math.random() * cap);
  };
}

function onFrame(f) {
  switch (f.type) {
    case "subscribed":
      setLive(true); // the inbox now updates live
      loadList(); // and catches up on what changed while offline
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
      if (c && f.kind !== "event") {
        c.last_message_at = f.ts;
        c.last_message = {
          seq: f.seq,
          kind: f.kind,
          role: f.author && f.author.role,
          preview: (f.body || "").split("\n").find((x) => x.trim()) || "",
          ts: f.ts,
          attachments: (f.attachments || []).length,
        };
        const own = f.author && f.author.role === "agent" && state.me && f.author.id === state.me.id;
        if (f.conversation_id !== state.selected && !own) {
          c.unread = (c.unread || 0) + 1;
          clearTimeout(state.countsTimer);
          state.countsTimer = setTimeout(loadCounts, 1000); // the tab's total
        }
        renderList();
      }
      const mine = c && c.assignee && state.me && c.assignee.id === state.me.id;
      if (mine && f.author && f.author.role === "visitor" && (f.conversation_id !== state.selected || document.hidden) && state.prefs.notify.new_message_mine) {
        notify(t("notify.new_message"), (f.body || "").slice(0, 120), f.conversation_id);
      }
      if (f.conversation_id === state.selected) {
        markRead();
        renderSeen();
      }
      break;
    }
    case "read":
      if (f.conversation_id === state.selected && f.author && f.author.role === "visitor") setVisitorRead(f.seq);
      break;
    case "watching":
      if (f.conversation_id === state.selected && state.histLow == null) loadNewest(f.conversation_id, f.last_seq);
      break;
    case "resumed":
      if (f.conversation_id === state.selected) markRead();
      break;
    case "ack":
      onAck(f);
      renderConn();
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

// ------------------------------------------------------------------ wiring

function onShortcut(e) {
  if (!state.me || e.ctrlKey || e.metaKey || e.altKey || inTextField(e.target)) return;
  if (e.key === "Escape" && document.body.dataset.drawer === "visitor") {
    closeDrawer();
    return;
  }
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
  $("status-filter").addEventListener("change", () => {
    state.statusUntouched = false;
    resetList();
  });
  $("view-filter").addEventListener("change", () => resetList());
  let timer = null;
  const debounced = () => {
    clearTimeout(timer);
    timer = setTimeout(resetList, 300);
  };
  $("tag-filter").addEventListener("input", debounced);
  $("search").addEventListener("input", debounced);
  $("more").addEventListener("click", () => loadList(true));
  $("reply").addEventListener("submit", onReply);
  $("reply-body").addEventListener("keydown", onReplyKey);
  $("reply-body").addEventListener("input", onTypingInput);
  $("reply-body").addEventListener("blur", () => setTimeout(closeCanned, 150));
  $("note").addEventListener("change", () => {
    $("reply").classList.toggle("is-note", $("note").checked);
    $("send").textContent = $("note").checked ? t("composer.add_note") : t("composer.send");
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
  $("back-to-list").addEventListener("click", () => {
    setPane("list");
    const b = state.selected && document.querySelector(`#conversations button[data-id="${CSS.escape(state.selected)}"]`);
    if (b) b.focus();
  });
  $("show-visitor").addEventListener("click", () => {
    if (document.body.dataset.drawer === "visitor") closeDrawer();
    else openDetails();
  });
  $("close-visitor").addEventListener("click", () => closeDrawer());
  // Files: the button, drag and drop onto the composer, and a pasted screenshot.
  $("attach").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", () => {
    uploads.add([...$("file-input").files]);
    $("file-input").value = "";
  });
  const reply = $("reply");
  reply.addEventListener("dragover", (e) => {
    if (!state.selected || !e.dataTransfer || ![...e.dataTransfer.types].includes("Files")) return;
    e.preventDefault();
    reply.classList.add("is-dragging");
    $("drop-hint").hidden = false;
  });
  reply.addEventListener("dragleave", (e) => {
    if (e.relatedTarget && reply.contains(e.relatedTarget)) return;
    reply.classList.remove("is-dragging");
    $("drop-hint").hidden = true;
  });
  reply.addEventListener("drop", (e) => {
    reply.classList.remove("is-dragging");
    $("drop-hint").hidden = true;
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    uploads.add([...e.dataTransfer.files]);
  });
  $("reply-body").addEventListener("paste", (e) => {
    const files = [...((e.clipboardData && e.clipboardData.files) || [])];
    if (!files.length) return;
    e.preventDefault();
    uploads.add(files.map((f, i) => (f.name && f.name !== "image.png" ? f : new File([f], `screenshot-${Date.now()}-${i}.png`, { type: f.type }))));
  });
  document.addEventListener("keydown", onShortcut);
  document.addEventListener("visibilitychange", markRead);
  window.addEventListener("hashchange", route);
}

function resetList() {
  state.pages = 1;
  state.nextCursor = null;
  loadList();
}

async function boot() {
  setLanguage(null);
  translatePage(document);
  wire();
  const hash = location.hash.replace(/^#/, "");
  try {
    const data = await api("GET", "/console/me");
    start(data.agent, data.preferences || data.agent.preferences);
  } catch (e) {
    if (hash.startsWith("/invite/")) route();
    else showLogin(e.status === 401 ? "" : errorText(e));
  }
}

boot();
