// Satisfaction ratings and business hours in the console: the CSAT part of the stats page,
// a conversation's rating in the thread head, and the admin page for business hours.
// The console's own helpers come in as `h` ({api, el, table, row, form, time, $}), so this
// module holds no state of the console's. Text reaches the page through text nodes only.

import { locale, t } from "./i18n.js";

const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

function count(n) {
  return n == null ? "<5" : String(n);
}

function average(a) {
  return a == null ? t("csat.average_withheld") : t("csat.average_of", { avg: a.toFixed(2) });
}

function share(x) {
  return x == null ? "—" : Math.round(x * 100) + " %";
}

// ------------------------------------------------------------------ stats

// The stats page's CSAT part: aggregates only, as the API gives them (P10).
export function csatSection(csat, h) {
  const { el, table, row } = h;
  const box = el("section", "csat");
  box.id = "stats-csat";
  box.setAttribute("aria-labelledby", "stats-csat-title");
  const title = el("h3", null, t("csat.title"));
  title.id = "stats-csat-title";
  box.append(title);
  if (!csat) {
    box.append(el("p", "muted", t("csat.none")));
    return box;
  }
  const facts = el("dl", "facts");
  facts.id = "stats-csat-summary";
  row(facts, t("csat.ratings"), count(csat.ratings));
  row(facts, t("csat.average"), average(csat.average));
  row(facts, t("csat.satisfied"), share(csat.satisfied_share));
  const dist = table(
    [t("csat.score"), t("csat.ratings")],
    (csat.distribution || []).map((d) => [String(d.score), count(d.ratings)]),
  );
  dist.id = "stats-csat-distribution";
  const agents = table(
    [t("csat.agent"), t("csat.ratings"), t("csat.average"), t("csat.satisfied_short")],
    (csat.per_agent || []).map((a) => [a.agent.name, count(a.ratings), average(a.average), share(a.satisfied_share)]),
  );
  agents.id = "stats-csat-agents";
  const days = table(
    [t("csat.day"), t("csat.ratings"), t("csat.average")],
    (csat.per_day || []).map((d) => [d.day, count(d.ratings), average(d.average)]),
  );
  days.id = "stats-csat-days";
  const wrap = el("div", "chart-row");
  wrap.append(dist, days);
  box.append(facts, wrap, el("h4", null, t("csat.per_agent")), agents);
  return box;
}

// ------------------------------------------------------------------ thread head

const ratingCache = new Map(); // conversation id + status -> rating or null

// "Rated 4 of 5: …" under a resolved conversation's title, for the agents reading it.
export function ratingNote(c, h) {
  const { api, el, $ } = h;
  let note = $("thread-rating");
  if (!note) {
    note = el("p", "muted");
    note.id = "thread-rating";
    $("thread-meta").after(note);
  }
  if (!c || !c.id || c.status !== "resolved") {
    note.replaceChildren();
    note.dataset.for = "";
    return;
  }
  const key = c.id + "/" + (c.updated_at || "") + "/" + (c.rating ? c.rating.score : "");
  if (note.dataset.for === key) return;
  note.dataset.for = key;
  const show = (r) => {
    if (note.dataset.for !== key) return;
    note.replaceChildren(r ? t("csat.rated", { score: r.score }) + (r.comment ? ": " + r.comment : "") : t("csat.not_rated"));
  };
  if (ratingCache.has(key)) return show(ratingCache.get(key));
  api("GET", `/api/v1/conversations/${encodeURIComponent(c.id)}/rating`).then(
    (r) => {
      ratingCache.set(key, r);
      show(r);
    },
    (e) => {
      if (e.status === 404) {
        ratingCache.set(key, null);
        show(null);
      }
    },
  );
}

// ------------------------------------------------------------------ business hours

function intervalsText(list) {
  return (list || []).map((i) => `${i.start}-${i.end}`).join(", ");
}

// "09:00-12:00, 13:00-17:00" to intervals; anything else goes to the server as it is, so
// its answer (bad_request, with why) is the one the admin sees.
function parseIntervals(text) {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const [start, end] = part.split(/\s*[-–]\s*/);
      return { start: start || "", end: end || "" };
    });
}

// "Monday 4 Dec, 09:00 Europe/Oslo", in the schedule's own zone (that is what its hours
// mean), with the agent's local time beside it when their zone differs.
export function whenInZone(ts, zone) {
  if (!ts) return "";
  const d = new Date(ts);
  const opts = { weekday: "long", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  let there;
  try {
    there = d.toLocaleString(locale(), { ...opts, timeZone: zone }) + " " + zone;
  } catch {
    return d.toLocaleString(locale(), opts);
  }
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const fmt = (tz) => d.toLocaleString("en-GB", { ...opts, timeZone: tz });
  if (!mine || fmt(mine) === fmt(zone)) return there;
  const here = d.toLocaleString(locale(), { weekday: "long", hour: "2-digit", minute: "2-digit" });
  return there + " " + t("hours.local_time", { time: here });
}

export async function hoursPage(h) {
  const { api, el, $ } = h;
  $("page-title").textContent = t("admin.hours");
  const data = await api("GET", "/api/v1/business-hours");
  const status = el("p", "hours-status");
  status.id = "hours-status";
  status.setAttribute("role", "status");
  const say = (d) => {
    const now = d.enabled ? (d.open_now ? t("hours.open_now") : t("hours.closed_now")) : t("hours.always_open");
    const next = d.next_change
      ? " · " + t(d.open_now ? "hours.closes" : "hours.opens", { when: whenInZone(d.next_change, d.time_zone) })
      : "";
    status.textContent = now + next;
  };
  say(data);

  const f = el("form", "admin-form hours-form");
  f.id = "hours-form";
  const field = (label, input, hint) => {
    const wrap = el("div", "field");
    const l = el("label", null, label);
    l.htmlFor = input.id;
    wrap.append(l, input);
    if (hint) {
      const p = el("span", "muted small", hint);
      p.id = input.id + "-hint";
      input.setAttribute("aria-describedby", p.id);
      wrap.append(p);
    }
    return wrap;
  };
  const enabled = el("input");
  enabled.type = "checkbox";
  enabled.id = "hours-enabled";
  enabled.checked = !!data.enabled;
  const enabledWrap = el("div", "field check");
  const enabledLabel = el("label", null, " " + t("hours.apply"));
  enabledLabel.prepend(enabled);
  enabledWrap.append(enabledLabel);
  const zone = el("input");
  zone.id = "hours-zone";
  zone.value = data.time_zone;
  zone.autocomplete = "off";
  zone.maxLength = 64;
  const rows = el("div", "hours-days");
  const inputs = {};
  for (const key of DAYS) {
    const label = t("day." + key);
    const input = el("input");
    input.id = "hours-" + key;
    input.value = intervalsText(data.weekly[key]);
    input.autocomplete = "off";
    input.placeholder = t("hours.closed");
    inputs[key] = input;
    rows.append(field(label, input));
  }
  const closed = el("textarea");
  closed.id = "hours-closed";
  closed.rows = 3;
  closed.value = (data.closed_dates || []).join("\n");
  const save = el("button", null, t("hours.save"));
  save.type = "submit";
  const err = el("p", "form-error");
  err.id = "hours-error";
  err.setAttribute("role", "alert");
  f.append(
    enabledWrap,
    field(t("hours.zone"), zone, t("hours.zone_hint")),
    el("p", "muted full", t("hours.explain")),
    rows,
    field(t("hours.closed_dates"), closed, t("hours.closed_hint")),
    save,
    err,
  );
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    save.disabled = true;
    const weekly = {};
    for (const key of DAYS) weekly[key] = parseIntervals(inputs[key].value);
    const body = {
      enabled: enabled.checked,
      time_zone: zone.value.trim(),
      weekly,
      closed_dates: closed.value.split(/[\s,]+/).filter(Boolean),
    };
    try {
      const saved = await api("PUT", "/api/v1/business-hours", body);
      closed.value = saved.closed_dates.join("\n");
      say(saved);
      status.dataset.saved = saved.updated_at || "";
    } catch (x) {
      err.textContent = h.errorText(x);
    } finally {
      save.disabled = false;
    }
  });
  $("page-body").replaceChildren(
    status,
    f,
    el(
      "p",
      "muted",
      t("hours.outside"),
    ),
  );
  $("page-body").dataset.loaded = "hours";
}
