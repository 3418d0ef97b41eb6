// Webhooks in the console: the admin page listing the endpoints, registering one (its
// signing secret shown once, right after), and reading an endpoint's delivery log.
// The console's own helpers come in as `h` ({api, el, table, form, time, $, t,
// errorText}), so this module holds no state of the console's. Text reaches the page
// through text nodes only, in the console's language (i18n/*.js, keys webhooks.*).

import { locale, t } from "./i18n.js";

// The events an endpoint can subscribe to, each with what it means (in the console's
// language, so made when the page is drawn).
function events() {
  return [
    ["conversation.created", t("webhooks.on_conversation_created")],
    ["message.created", t("webhooks.on_message_created")],
    ["conversation.resolved", t("webhooks.on_conversation_resolved")],
    ["subject.erased", t("webhooks.on_subject_erased")],
    ["rating.created", t("webhooks.on_rating_created")],
  ];
}

// A delivery's state (pending, delivered, failed) in words; an unknown one as it is.
function stateText(status) {
  const key = "webhooks.state." + status;
  const s = t(key);
  return s === key ? String(status) : s;
}

function clock(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleString(locale(), { dateStyle: "short", timeStyle: "medium" });
}

function smallButton(h, text, label, onClick) {
  const b = h.el("button", "secondary small", text);
  b.type = "button";
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function checkbox(h, name, text, checked) {
  const wrap = h.el("div", "check");
  const box = h.el("input");
  box.type = "checkbox";
  box.name = name;
  box.id = "add-webhook-" + name;
  box.checked = checked;
  const label = h.el("label", null, text);
  label.htmlFor = box.id;
  wrap.append(box, " ", label);
  return wrap;
}

// One attempt as a line of the log: when, and what came back (or why nothing did).
function attemptText(a) {
  const answer = a.status_code == null ? t("webhooks.no_answer") : "HTTP " + a.status_code;
  const vars = { when: clock(a.at), answer, error: a.error, ms: a.duration_ms };
  return a.error ? t("webhooks.attempt_error", vars) : t("webhooks.attempt", vars);
}

async function deliveryLog(h, hook, show) {
  const { api, el, table } = h;
  const data = await api("GET", `/api/v1/webhooks/${encodeURIComponent(hook.id)}/deliveries?limit=50`);
  const title = el("h3", null, t("webhooks.log_title", { url: hook.url }));
  title.id = "webhook-log-title";
  const rows = data.items.map((d) => {
    const attempts = el("ul", "attempts");
    for (const a of d.log) attempts.append(el("li", null, attemptText(a)));
    return [
      clock(d.created_at),
      d.type,
      stateText(d.status),
      attempts,
      d.status === "pending" ? clock(d.next_attempt_at) : clock(d.finished_at),
    ];
  });
  const box = el("section", "webhook-log");
  box.setAttribute("aria-labelledby", title.id);
  box.append(
    title,
    el("p", "muted", t("webhooks.log_explain")),
    smallButton(h, t("webhooks.refresh"), t("webhooks.refresh_label"), () => show({ log: hook.id })),
    rows.length
      ? table(
          [t("webhooks.event_time"), t("webhooks.event"), t("webhooks.status"), t("webhooks.attempts"), t("webhooks.next_or_finished")],
          rows,
        )
      : el("p", "muted", t("webhooks.no_deliveries")),
  );
  return box;
}

// The page. `view.secret`: a secret to show once; `view.log`: whose delivery log to show.
export async function webhooksPage(h, view = {}) {
  const { api, el, table, form, $, errorText } = h;
  $("page-title").textContent = t("admin.webhooks");
  const data = await api("GET", "/api/v1/webhooks");
  const error = el("p", "error");
  error.id = "webhooks-error";
  error.setAttribute("role", "alert");
  const show = (next) =>
    webhooksPage(h, next).catch((x) => {
      error.textContent = errorText(x);
    });
  const act = (promise, next) =>
    promise.then(
      (answer) => show(next ? next(answer) : {}),
      (x) => {
        error.textContent = errorText(x);
      },
    );
  const path = (w) => `/api/v1/webhooks/${encodeURIComponent(w.id)}`;
  const choices = events();

  const parts = [];
  if (view.secret) {
    const box = el("div", "secret");
    box.setAttribute("role", "status");
    box.append(el("strong", null, t("webhooks.secret") + " "));
    const code = el("code", null, view.secret);
    code.id = "new-webhook-secret";
    box.append(code);
    parts.push(box);
  }
  const rows = data.items.map((w) => {
    const active = el("input");
    active.type = "checkbox";
    active.checked = w.active;
    active.setAttribute("aria-label", t("webhooks.active_of", { url: w.url }));
    active.addEventListener("change", () =>
      act(api("PATCH", path(w), { active: active.checked }), () => ({ log: view.log })),
    );
    const actions = el("span", "row-actions");
    actions.append(
      smallButton(h, t("webhooks.log"), t("webhooks.log_of", { url: w.url }), () => show({ log: w.id })),
      smallButton(h, t("webhooks.test"), t("webhooks.test_to", { url: w.url }), () =>
        act(api("POST", path(w) + "/test"), () => ({ log: w.id })),
      ),
      smallButton(h, t("webhooks.rotate"), t("webhooks.rotate_for", { url: w.url }), () => {
        if (confirm(t("webhooks.rotate_confirm", { url: w.url }))) {
          act(api("PATCH", path(w), { rotate_secret: true }), (made) => ({ secret: made.secret, log: w.id }));
        }
      }),
      smallButton(h, t("common.delete"), t("webhooks.delete_label", { url: w.url }), () => {
        if (confirm(t("webhooks.delete_confirm", { url: w.url }))) {
          act(api("DELETE", path(w)));
        }
      }),
    );
    const sends = [
      w.include_message_body ? t("webhooks.sends_body") : "",
      w.include_notes ? t("webhooks.sends_notes") : "",
    ]
      .filter(Boolean)
      .join(", ");
    const where = el("span", null, w.url);
    if (w.description) where.append(el("br"), el("span", "muted", w.description));
    return [where, w.events.join(", "), sends || t("webhooks.sends_ids"), active, actions];
  });
  parts.push(
    rows.length
      ? table([t("webhooks.endpoint"), t("webhooks.events"), t("webhooks.sends"), t("webhooks.active"), ""], rows)
      : el("p", "muted", t("webhooks.none")),
    error,
  );
  const logged = data.items.find((w) => w.id === view.log);
  if (logged) parts.push(await deliveryLog(h, logged, show));

  const add = form(
    "add-webhook",
    [
      { name: "url", label: t("webhooks.url"), type: "url", required: true },
      { name: "description", label: t("webhooks.description") },
    ],
    t("webhooks.add"),
    async (v, f) => {
      const made = await api("POST", "/api/v1/webhooks", {
        url: v.url.trim(),
        description: v.description,
        events: choices.map(([name]) => name).filter((name) => f.elements[name].checked),
        include_message_body: f.elements.include_message_body.checked,
        include_notes: f.elements.include_notes.checked,
      });
      await show({ secret: made.secret, log: made.id });
    },
  );
  const chosen = el("fieldset", "webhook-choices");
  chosen.append(el("legend", null, t("webhooks.events")));
  for (const [name, text] of choices) chosen.append(checkbox(h, name, `${text} (${name})`, false));
  const extras = el("fieldset", "webhook-choices");
  extras.append(el("legend", null, t("webhooks.personal")));
  extras.append(
    checkbox(h, "include_message_body", t("webhooks.include_body"), false),
    checkbox(h, "include_notes", t("webhooks.include_notes"), false),
  );
  add.insertBefore(extras, add.querySelector("button[type=submit]"));
  add.insertBefore(chosen, extras);
  parts.push(el("h3", null, t("webhooks.add_title")), el("p", "muted", t("webhooks.explain")), add);
  $("page-body").replaceChildren(...parts);
}
