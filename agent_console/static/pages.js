// The pages beside the inbox: admin (agents, invitations, tokens, canned responses,
// policies, origins, business hours, webhooks), stats and the agent's own account.

import { ApiError, $, api, button, el, enc, errorText, form, row, safeLink, table, time } from "./core.js";
import { csatSection, hoursPage } from "./csat.js";
import { LANGUAGES, t } from "./i18n.js";
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
  pageHead("Agents");
  const data = await api("GET", "/api/v1/agents");
  ctx.state.agents = data.items;
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
  ctx.state.canned = data.items;
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
        { name: "role", label: t("field.role"), options: ["agent", "admin", "compliance"].map((r) => [r, t("role." + r)]) },
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
