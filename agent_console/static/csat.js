// Satisfaction ratings and business hours in the console: the CSAT part of the stats page,
// a conversation's rating in the thread head, and the admin page for business hours.
// The console's own helpers come in as `h` ({api, el, table, row, form, time, $}), so this
// module holds no state of the console's. Text reaches the page through text nodes only.

const DAYS = [
  ["monday", "Monday"],
  ["tuesday", "Tuesday"],
  ["wednesday", "Wednesday"],
  ["thursday", "Thursday"],
  ["friday", "Friday"],
  ["saturday", "Saturday"],
  ["sunday", "Sunday"],
];

function count(n) {
  return n == null ? "<5" : String(n);
}

function average(a) {
  return a == null ? "— (under 5 ratings)" : a.toFixed(2) + " of 5";
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
  const title = el("h3", null, "Satisfaction (CSAT)");
  title.id = "stats-csat-title";
  box.append(title);
  if (!csat) {
    box.append(el("p", "muted", "No ratings."));
    return box;
  }
  const facts = el("dl", "facts");
  facts.id = "stats-csat-summary";
  row(facts, "Ratings", count(csat.ratings));
  row(facts, "Average", average(csat.average));
  row(facts, "Satisfied (4 or 5)", share(csat.satisfied_share));
  const dist = table(
    ["Score", "Ratings"],
    (csat.distribution || []).map((d) => [String(d.score), count(d.ratings)]),
  );
  dist.id = "stats-csat-distribution";
  const agents = table(
    ["Agent", "Ratings", "Average", "Satisfied"],
    (csat.per_agent || []).map((a) => [a.agent.name, count(a.ratings), average(a.average), share(a.satisfied_share)]),
  );
  agents.id = "stats-csat-agents";
  const days = table(
    ["Day", "Ratings", "Average"],
    (csat.per_day || []).map((d) => [d.day, count(d.ratings), average(d.average)]),
  );
  days.id = "stats-csat-days";
  const wrap = el("div", "chart-row");
  wrap.append(dist, days);
  box.append(facts, wrap, el("h4", null, "Per agent"), agents);
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
  const key = c.id + "/" + (c.updated_at || "");
  if (note.dataset.for === key) return;
  note.dataset.for = key;
  const show = (r) => {
    if (note.dataset.for !== key) return;
    note.replaceChildren(r ? `Rated ${r.score} of 5` + (r.comment ? ": " + r.comment : "") : "Not rated");
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

function when(ts) {
  if (!ts) return "";
  return new Date(ts).toLocaleString([], { weekday: "long", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

export async function hoursPage(h) {
  const { api, el, $ } = h;
  $("page-title").textContent = "Business hours";
  const data = await api("GET", "/api/v1/business-hours");
  const status = el("p", "hours-status");
  status.id = "hours-status";
  status.setAttribute("role", "status");
  const say = (d) => {
    const now = d.enabled ? (d.open_now ? "Open now" : "Closed now") : "Always open (business hours are off)";
    const next = d.next_change ? ` · ${d.open_now ? "closes" : "opens"} ${when(d.next_change)}` : "";
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
  const enabledLabel = el("label", null, " Apply business hours (off: always open)");
  enabledLabel.prepend(enabled);
  enabledWrap.append(enabledLabel);
  const zone = el("input");
  zone.id = "hours-zone";
  zone.value = data.time_zone;
  zone.autocomplete = "off";
  zone.maxLength = 64;
  const rows = el("div", "hours-days");
  const inputs = {};
  for (const [key, label] of DAYS) {
    const input = el("input");
    input.id = "hours-" + key;
    input.value = intervalsText(data.weekly[key]);
    input.autocomplete = "off";
    input.placeholder = "closed";
    inputs[key] = input;
    rows.append(field(label, input));
  }
  const closed = el("textarea");
  closed.id = "hours-closed";
  closed.rows = 3;
  closed.value = (data.closed_dates || []).join("\n");
  const save = el("button", null, "Save business hours");
  save.type = "submit";
  const err = el("p", "error");
  err.id = "hours-error";
  err.setAttribute("role", "alert");
  f.append(
    enabledWrap,
    field("Time zone", zone, "An IANA name, like Europe/Oslo."),
    el("p", "muted full", "Hours per day, like 09:00-17:00 or 09:00-12:00, 13:00-17:00. An end at or before the start runs past midnight. Empty: closed."),
    rows,
    field("Closed dates", closed, "One date per line, like 2026-12-24."),
    save,
    err,
  );
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    save.disabled = true;
    const weekly = {};
    for (const [key] of DAYS) weekly[key] = parseIntervals(inputs[key].value);
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
      err.textContent = x.status ? `Error ${x.status} ${x.code}: ${x.message}` : String(x);
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
      "Outside these hours the chat widget offers the offline form, and a conversation " +
        "started then gets an automatic reply saying when someone will answer.",
    ),
  );
  $("page-body").dataset.loaded = "hours";
}
