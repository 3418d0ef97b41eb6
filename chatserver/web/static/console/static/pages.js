// The pages beside the inbox: admin (agents, invitations, tokens, canned responses,
// policies, origins, business hours, webhooks), stats and the agent's own account.

import { ApiError, $, api, button, el, enc, errorText, form, row, safeLink, table, time } from "./core.js";
import { csatSection, hoursPage } from "./csat.js";
import { LANGUAGES, locale, t } from "./i18n.js";
import { webhooksPage } from "./webhooks.js";

// Set by console.js: {state, applyPreferences(prefs)}.
export const ctx = { state: null, applyPreferences: null };

export function pageError(e) {
  $("page-error").textContent = errorText(e);
  if (e instanceof ApiError) $("page-error").dataset.code = e.code;
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
  pageHead(t("admin.agents"));
  const data = await api("GET", "/api/v1/agents");
  ctx.state.agents = data.items;
  const roles = ["agent", "admin", "compliance"];
  const rows = data.items.map((a) => {
    const role = el("select");
    role.setAttribute("aria-label", t("agents.role_of", { name: a.name }));
    for (const r of roles) {
      const o = el("option", null, t("role." + r));
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
    active.setAttribute("aria-label", t("agents.active_of", { name: a.name }));
    active.addEventListener("change", () =>
      api("PATCH", `/api/v1/agents/${enc(a.id)}`, { active: active.checked }).then(agentsPage, agentsFailed),
    );
    const name = el("input");
    name.value = a.name;
    name.maxLength = 200;
    name.setAttribute("aria-label", t("agents.name_of", { name: a.name }));
    const rename = button(t("agents.save_name"), () => {
      if (name.value.trim() && name.value.trim() !== a.name) {
        api("PATCH", `/api/v1/agents/${enc(a.id)}`, { name: name.value.trim() }).then(agentsPage, agentsFailed);
      }
    });
    rename.setAttribute("aria-label", t("agents.save_name_of", { name: a.name }));
    const nameCell = el("span", "row-actions");
    nameCell.append(name, " ", rename);
    return [nameCell, a.email || "", label("kind.", a.kind), role, active, a.online ? t("common.yes") : t("common.no")];
  });
  const add = form(
    "add-agent",
    [
      { name: "email", label: t("field.email"), type: "email", required: true },
      { name: "name", label: t("field.name"), required: true },
      { name: "password", label: t("field.password"), type: "password", required: true },
      { name: "role", label: t("field.role"), options: roleOptions() },
    ],
    t("agents.add"),
    async (v) => {
      await api("POST", "/api/v1/agents", v);
      await agentsPage();
    },
  );
  $("page-body").replaceChildren(
    table([t("field.name"), t("field.email"), t("agents.kind"), t("field.role"), t("agents.active"), t("agents.online")], rows),
    el("h3", null, t("agents.add_title")),
    add,
  );
}

// A value the server names (a role, a kind, a device class) in the console's language;
// one the catalogue does not know is shown as it is.
function label(prefix, value) {
  const key = prefix + value;
  const s = t(key);
  return s === key ? String(value ?? "") : s;
}

function roleOptions() {
  return ["agent", "admin", "compliance"].map((r) => [r, t("role." + r)]);
}

async function tokensPage(fresh) {
  pageHead(t("admin.tokens"));
  const data = await api("GET", "/api/v1/tokens");
  const parts = [];
  if (fresh) {
    const box = el("div", "secret");
    box.setAttribute("role", "status");
    box.append(el("strong", null, t("tokens.new") + " "));
    const code = el("code", null, fresh);
    code.id = "new-token";
    box.append(code);
    parts.push(box);
  }
  const rows = data.items.map((tok) => [
    tok.agent.name,
    label("role.", tok.agent.role),
    time(tok.created_at),
    tok.revoked_at ? t("tokens.revoked", { when: time(tok.revoked_at) }) : t("tokens.active"),
    tok.revoked_at
      ? ""
      : button(t("tokens.revoke"), () => {
          if (confirm(t("tokens.revoke_confirm", { name: tok.agent.name }))) {
            api("DELETE", `/api/v1/tokens/${enc(tok.id)}`).then(() => tokensPage(), pageError);
          }
        }),
  ]);
  parts.push(
    table([t("tokens.bot"), t("field.role"), t("tokens.created"), t("tokens.state"), ""], rows),
    el("h3", null, t("tokens.create_title")),
    form(
      "add-token",
      [
        { name: "name", label: t("tokens.bot_name"), required: true },
        { name: "role", label: t("field.role"), options: roleOptions() },
      ],
      t("tokens.create"),
      async (v) => {
        const made = await api("POST", "/api/v1/tokens", v);
        await tokensPage(made.token);
      },
    ),
  );
  $("page-body").replaceChildren(...parts);
}

async function cannedPage() {
  pageHead(t("admin.canned"));
  const data = await api("GET", "/api/v1/canned-responses");
  ctx.state.canned = data.items;
  const rows = data.items.map((c) => {
    const body = el("textarea");
    body.value = c.body;
    body.rows = 2;
    body.setAttribute("aria-label", t("canned.body_of", { shortcut: c.shortcut }));
    return [
      "/" + c.shortcut,
      body,
      el("span", null, time(c.updated_at)),
      el("span", "row-actions"),
    ].map((x, i) => {
      if (i === 3) {
        x.append(
          button(t("common.save"), () =>
            api("PUT", `/api/v1/canned-responses/${enc(c.id)}`, { shortcut: c.shortcut, body: body.value }).then(
              cannedPage,
              pageError,
            ),
          ),
          " ",
          button(t("common.delete"), () => {
            if (confirm(t("canned.delete_confirm", { shortcut: c.shortcut }))) {
              api("DELETE", `/api/v1/canned-responses/${enc(c.id)}`).then(cannedPage, pageError);
            }
          }),
        );
      }
      return x;
    });
  });
  $("page-body").replaceChildren(
    table([t("field.shortcut"), t("canned.body"), t("canned.updated"), ""], rows),
    el("h3", null, t("canned.add_title")),
    form(
      "add-canned",
      [
        { name: "shortcut", label: t("canned.shortcut_label"), required: true },
        { name: "body", label: t("canned.body"), type: "textarea", required: true },
      ],
      t("canned.add"),
      async (v) => {
        await api("POST", "/api/v1/canned-responses", v);
        await cannedPage();
      },
    ),
  );
}

async function policiesPage() {
  pageHead(t("policies.title"));
  const data = await api("GET", "/api/v1/policies");
  const items = data.items || data;
  const rows = items.map((p) => [
    p.version,
    p.url ? safeLink(p.url, p.url) : "",
    time(p.published_at),
    p.current ? t("policies.current") : "",
  ]);
  $("page-body").replaceChildren(
    table([t("field.version"), t("field.url"), t("policies.published"), ""], rows),
    el("h3", null, t("policies.publish_title")),
    el("p", "muted", t("policies.explain")),
    form(
      "add-policy",
      [
        { name: "version", label: t("field.version"), required: true },
        { name: "url", label: t("field.url"), required: true },
      ],
      t("policies.publish"),
      async (v) => {
        await api("POST", "/api/v1/policies", v);
        await policiesPage();
      },
    ),
  );
}

async function originsPage() {
  pageHead(t("admin.origins"));
  const data = await api("GET", "/api/v1/origins");
  const rows = data.items.map((o) => [
    o.origin,
    label("origins.source.", o.source),
    o.source === "admin"
      ? button(t("origins.remove"), () =>
          api("DELETE", "/api/v1/origins?" + new URLSearchParams({ origin: o.origin })).then(originsPage, pageError),
        )
      : "",
  ]);
  $("page-body").replaceChildren(
    table([t("field.origin"), t("origins.source"), ""], rows),
    el("h3", null, t("origins.add_title")),
    form("add-origin", [{ name: "origin", label: t("origins.label"), required: true }], t("origins.add"), async (v) => {
      await api("POST", "/api/v1/origins", v);
      await originsPage();
    }),
  );
}

// ------------------------------------------------------------------ stats

function fmtCount(n) {
  return n == null ? "<5" : String(n);
}

function fmtNumber(x, digits) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(x);
}

function fmtDuration(s) {
  // A duration over fewer than 5 conversations is withheld (P10): say why, not "<5".
  if (s == null) return t("stats.withheld");
  if (s < 90) return t("stats.seconds", { n: fmtNumber(Math.round(s), 0) });
  if (s < 5400) return t("stats.minutes", { n: fmtNumber(Math.round(s / 60), 0) });
  return t("stats.hours", { n: fmtNumber(s / 3600, 1) });
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
  title.textContent = t("stats.per_day");
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
    const tip = svg("title");
    tip.textContent = `${d.day}: ${fmtCount(v)}`;
    r.append(tip);
    chart.append(r);
  });
  chart.append(svg("line", { x1: 0, y1: h, x2: w, y2: h, class: "axis" }));
  return chart;
}

async function statsPage() {
  pageHead(t("nav.stats"));
  const today = new Date();
  const iso = (d) => d.toISOString().slice(0, 10);
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const to = q.get("to") || iso(today);
  const start = q.get("from") || iso(new Date(today.getTime() - 29 * 86400000));
  const pick = form(
    "stats-range",
    [
      { name: "from", label: t("stats.from"), type: "date", value: start },
      { name: "to", label: t("stats.to"), type: "date", value: to },
    ],
    t("stats.show"),
    async (v) => {
      location.hash = "#/stats?" + new URLSearchParams({ from: v.from, to: v.to });
    },
  );
  pick.classList.add("inline");
  $("page-body").replaceChildren(pick);
  const s = await api("GET", "/api/v1/stats?" + new URLSearchParams({ from: start, to }));
  const summary = el("dl", "facts stats-summary");
  summary.id = "stats-summary";
  row(summary, t("stats.conversations"), fmtCount(s.conversations));
  row(summary, t("stats.first_median"), fmtDuration(s.first_response_seconds && s.first_response_seconds.median));
  row(summary, t("stats.first_p90"), fmtDuration(s.first_response_seconds && s.first_response_seconds.p90));
  row(summary, t("stats.resolution_median"), fmtDuration(s.resolution_seconds && s.resolution_seconds.median));
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
    [t("stats.day"), t("stats.conversations")],
    days.map((d) => [d.day, fmtCount(d.conversations)]),
  );
  perDay.id = "stats-days";
  const devices = table(
    [t("stats.device"), t("stats.sessions")],
    (s.device_mix || []).map((d) => [label("device.", d.device_class || "unknown"), fmtCount(d.sessions)]),
  );
  devices.id = "stats-devices";
  const perDayBox = el("div", "chart-row");
  perDayBox.append(chartWrap, perDay);
  $("page-body").append(
    summary,
    el("h3", null, t("stats.per_day")),
    perDayBox,
    el("h3", null, t("stats.device_mix")),
    devices,
    csatSection(s.csat, H),
    el("p", "muted", t("stats.footnote", { n: s.suppressed_below || 5 })),
  );
  $("page-body").dataset.loaded = "stats";
}

async function accountPage() {
  pageHead(t("account.title"));
  const me = ctx.state.me;
  const dl = el("dl", "facts");
  row(dl, t("field.name"), me.name);
  row(dl, t("field.email"), me.email);
  row(dl, t("field.role"), t("role." + me.role));
  const done = el("p", "ok");
  done.setAttribute("role", "status");
  const saved = el("p", "ok");
  saved.setAttribute("role", "status");
  $("page-body").replaceChildren(
    dl,
    el("h3", null, t("prefs.title")),
    preferencesForm(saved),
    saved,
    el("h3", null, t("account.change_password")),
    form(
      "change-password",
      [
        { name: "current", label: t("account.current_password"), type: "password", required: true, autocomplete: "current-password" },
        { name: "new", label: t("account.new_password"), type: "password", required: true, autocomplete: "new-password", hint: t("password.hint") },
      ],
      t("account.change_password"),
      async (v, f) => {
        done.textContent = "";
        await api("POST", "/console/password", { current: v.current, new: v.new });
        f.reset();
        done.textContent = t("account.password_changed");
      },
    ),
    done,
  );
}

// Language, sound, desktop notifications and which events notify, per agent.
function preferencesForm(saved) {
  const prefs = ctx.state.prefs;
  const f = el("form", "admin-form prefs-form");
  f.id = "preferences";
  const langWrap = el("div", "field");
  const langLabel = el("label", null, t("prefs.language"));
  langLabel.htmlFor = "pref-language";
  const lang = el("select");
  lang.id = "pref-language";
  lang.name = "language";
  const auto = el("option", null, t("prefs.language_browser"));
  auto.value = "";
  lang.append(auto);
  for (const [code, name] of LANGUAGES) {
    const o = el("option", null, name);
    o.value = code;
    o.lang = code;
    lang.append(o);
  }
  lang.value = prefs.language || "";
  langWrap.append(langLabel, lang);
  f.append(langWrap);
  const check = (name, label, value) => {
    const wrap = el("div", "field check");
    const box = el("input");
    box.type = "checkbox";
    box.id = "pref-" + name;
    box.name = name;
    box.checked = !!value;
    const l = el("label", null, " " + label);
    l.htmlFor = box.id;
    const line = el("span");
    line.append(box, l);
    wrap.append(line);
    f.append(wrap);
    return box;
  };
  const sound = check("sound", t("prefs.sound"), prefs.sound);
  const desktop = check("desktop", t("prefs.desktop"), prefs.desktop);
  const fs = el("fieldset", "webhook-choices");
  fs.append(el("legend", null, t("prefs.notify")));
  f.append(fs);
  const notify = prefs.notify || {};
  const boxes = {};
  for (const k of ["new_conversation", "new_message_mine", "assigned_to_me"]) {
    const wrap = el("div", "check");
    const box = el("input");
    box.type = "checkbox";
    box.id = "pref-notify-" + k;
    box.checked = notify[k] !== false;
    const l = el("label", null, " " + t("prefs.notify." + k));
    l.htmlFor = box.id;
    wrap.append(box, l);
    fs.append(wrap);
    boxes[k] = box;
  }
  const submit = el("button", null, t("prefs.save"));
  submit.type = "submit";
  const err = el("p", "form-error");
  err.setAttribute("role", "alert");
  f.append(submit, err);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    saved.textContent = "";
    err.textContent = "";
    const body = {
      language: lang.value || null,
      sound: sound.checked,
      desktop: desktop.checked,
      notify: Object.fromEntries(Object.entries(boxes).map(([k, b]) => [k, b.checked])),
    };
    submit.disabled = true;
    try {
      if (body.desktop && "Notification" in window && Notification.permission === "default") {
        await Notification.requestPermission();
      }
      const stored = await api("PUT", "/console/preferences", body);
      ctx.applyPreferences(stored || body);
      await accountPage();
      $("page-body").querySelector("#preferences + .ok").textContent = t("prefs.saved");
    } catch (x) {
      err.textContent = errorText(x);
    } finally {
      submit.disabled = false;
    }
  });
  return f;
}

async function invitationsPage(sent) {
  pageHead(t("invitations.title"));
  const data = await api("GET", "/api/v1/invitations");
  const parts = [];
  if (sent) {
    const box = el("p", "ok", t("invitations.sent", { email: sent }));
    box.setAttribute("role", "status");
    parts.push(box);
  }
  const rows = data.items.map((i) => [
    i.name,
    i.email,
    t("role." + i.role),
    time(i.expires_at),
    button(t("invitations.revoke"), () => {
      if (confirm(t("invitations.revoke_confirm", { email: i.email }))) {
        api("DELETE", `/api/v1/invitations/${enc(i.id)}`).then(() => invitationsPage(), pageError);
      }
    }),
  ]);
  parts.push(
    rows.length
      ? table([t("field.name"), t("field.email"), t("field.role"), t("invitations.expires"), ""], rows)
      : el("p", "muted", t("invitations.none")),
    el("h3", null, t("invitations.invite")),
    el("p", "muted", t("invitations.explain")),
    form(
      "add-invitation",
      [
        { name: "email", label: t("field.email"), type: "email", required: true },
        { name: "name", label: t("field.name"), required: true },
        { name: "role", label: t("field.role"), options: roleOptions() },
      ],
      t("invitations.send"),
      async (v) => {
        await api("POST", "/api/v1/invitations", v);
        await invitationsPage(v.email);
      },
    ),
  );
  $("page-body").replaceChildren(...parts);
}

export const PAGES = {
  account: accountPage,
  agents: agentsPage,
  invitations: () => invitationsPage(null),
  tokens: () => tokensPage(null),
  canned: cannedPage,
  policies: policiesPage,
  origins: originsPage,
  stats: statsPage,
  hours: () => hoursPage(H),
  webhooks: () => webhooksPage(H),
};




// The helpers the pages in modules of their own use (csat.js, webhooks.js).
const H = { api, el, table, row, form, time, $, t, errorText };
