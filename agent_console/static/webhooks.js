// Webhooks in the console: the admin page listing the endpoints, registering one (its
// signing secret shown once, right after), and reading an endpoint's delivery log.
// The console's own helpers come in as `h` ({api, el, table, form, time, $}), so this
// module holds no state of the console's. Text reaches the page through text nodes only.

const EVENTS = [
  ["conversation.created", "A conversation starts"],
  ["message.created", "A message is written"],
  ["conversation.resolved", "A conversation is resolved"],
  ["subject.erased", "A person's data is erased"],
  ["rating.created", "A visitor rates a conversation"],
];

function failure(x) {
  if (x && x.code) return `Error ${x.status} ${x.code}: ${x.message}`;
  return String(x && x.message ? x.message : x);
}

function clock(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  return d.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
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
  const answer = a.status_code == null ? "no answer" : "HTTP " + a.status_code;
  return `${clock(a.at)}: ${answer}${a.error ? " (" + a.error + ")" : ""}, ${a.duration_ms} ms`;
}

async function deliveryLog(h, hook, show) {
  const { api, el, table } = h;
  const data = await api("GET", `/api/v1/webhooks/${encodeURIComponent(hook.id)}/deliveries?limit=50`);
  const title = el("h3", null, "Delivery log: " + hook.url);
  title.id = "webhook-log-title";
  const rows = data.items.map((d) => {
    const attempts = el("ul", "attempts");
    for (const a of d.log) attempts.append(el("li", null, attemptText(a)));
    return [
      clock(d.created_at),
      d.type,
      d.status,
      attempts,
      d.status === "pending" ? clock(d.next_attempt_at) : clock(d.finished_at),
    ];
  });
  const box = el("section", "webhook-log");
  box.setAttribute("aria-labelledby", title.id);
  box.append(
    title,
    el(
      "p",
      "muted",
      "The newest deliveries first. Payloads are not kept here: only times, status codes and errors.",
    ),
    smallButton(h, "Refresh", "Refresh the delivery log", () => show({ log: hook.id })),
    rows.length
      ? table(["Event time", "Event", "Status", "Attempts", "Next attempt / finished"], rows)
      : el("p", "muted", "No deliveries yet."),
  );
  return box;
}

// The page. `view.secret`: a secret to show once; `view.log`: whose delivery log to show.
export async function webhooksPage(h, view = {}) {
  const { api, el, table, form, $ } = h;
  $("page-title").textContent = "Webhooks";
  const data = await api("GET", "/api/v1/webhooks");
  const error = el("p", "error");
  error.id = "webhooks-error";
  error.setAttribute("role", "alert");
  const show = (next) =>
    webhooksPage(h, next).catch((x) => {
      error.textContent = failure(x);
    });
  const act = (promise, next) =>
    promise.then(
      (answer) => show(next ? next(answer) : {}),
      (x) => {
        error.textContent = failure(x);
      },
    );
  const path = (w) => `/api/v1/webhooks/${encodeURIComponent(w.id)}`;

  const parts = [];
  if (view.secret) {
    const box = el("div", "secret");
    box.setAttribute("role", "status");
    box.append(el("strong", null, "Signing secret (shown only once, copy it now): "));
    const code = el("code", null, view.secret);
    code.id = "new-webhook-secret";
    box.append(code);
    parts.push(box);
  }
  const rows = data.items.map((w) => {
    const active = el("input");
    active.type = "checkbox";
    active.checked = w.active;
    active.setAttribute("aria-label", "Active: " + w.url);
    active.addEventListener("change", () =>
      act(api("PATCH", path(w), { active: active.checked }), () => ({ log: view.log })),
    );
    const actions = el("span", "row-actions");
    actions.append(
      smallButton(h, "Delivery log", "Delivery log of " + w.url, () => show({ log: w.id })),
      smallButton(h, "Send test", "Send test to " + w.url, () =>
        act(api("POST", path(w) + "/test"), () => ({ log: w.id })),
      ),
      smallButton(h, "New secret", "New secret for " + w.url, () => {
        if (confirm("Make a new secret for " + w.url + "? The old one stops working at once.")) {
          act(api("PATCH", path(w), { rotate_secret: true }), (made) => ({ secret: made.secret, log: w.id }));
        }
      }),
      smallButton(h, "Delete", "Delete the webhook to " + w.url, () => {
        if (confirm("Delete the webhook to " + w.url + " with its delivery log?")) {
          act(api("DELETE", path(w)));
        }
      }),
    );
    const sends = [w.include_message_body ? "message text" : "", w.include_notes ? "internal notes" : ""]
      .filter(Boolean)
      .join(", ");
    const where = el("span", null, w.url);
    if (w.description) where.append(el("br"), el("span", "muted", w.description));
    return [where, w.events.join(", "), sends || "ids and times only", active, actions];
  });
  parts.push(
    rows.length
      ? table(["Endpoint", "Events", "Sends", "Active", ""], rows)
      : el("p", "muted", "No webhooks yet."),
    error,
  );
  const logged = data.items.find((w) => w.id === view.log);
  if (logged) parts.push(await deliveryLog(h, logged, show));

  const add = form(
    "add-webhook",
    [
      { name: "url", label: "Endpoint URL (https://…)", type: "url", required: true },
      { name: "description", label: "Description (optional)" },
    ],
    "Add webhook",
    async (v, f) => {
      const made = await api("POST", "/api/v1/webhooks", {
        url: v.url.trim(),
        description: v.description,
        events: EVENTS.map(([name]) => name).filter((name) => f.elements[name].checked),
        include_message_body: f.elements.include_message_body.checked,
        include_notes: f.elements.include_notes.checked,
      });
      await show({ secret: made.secret, log: made.id });
    },
  );
  const events = el("fieldset", "webhook-choices");
  events.append(el("legend", null, "Events"));
  for (const [name, text] of EVENTS) events.append(checkbox(h, name, `${text} (${name})`, false));
  const extras = el("fieldset", "webhook-choices");
  extras.append(el("legend", null, "Personal data beyond ids (off unless you need it)"));
  extras.append(
    checkbox(h, "include_message_body", "Send message text (and rating comments)", false),
    checkbox(h, "include_notes", "Send agents' internal notes", false),
  );
  add.insertBefore(extras, add.querySelector("button[type=submit]"));
  add.insertBefore(events, extras);
  parts.push(
    el("h3", null, "Add a webhook"),
    el(
      "p",
      "muted",
      "Each delivery is signed with the endpoint's own secret (header Chatserver-Signature). " +
        "Deliveries carry ids, states and times; message text and notes only if ticked below.",
    ),
    add,
  );
  $("page-body").replaceChildren(...parts);
}
