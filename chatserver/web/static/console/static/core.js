// What every part of the console shares: the HTTP client, DOM helpers, times, and
// error sentences. User data only ever reaches the page through text nodes and DOM
// APIs (never innerHTML).

import { locale, t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)chatserver_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export class ApiError extends Error {
  constructor(status, code, message, field, reason) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
    this.reason = reason || null;
  }
}

// Called on a 401 once signed in (set by console.js).
export const hooks = { unauthorized: null };

export async function api(method, path, body, extra) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  let res;
  try {
    res = await fetch(path, { ...init, ...(extra || {}) });
  } catch {
    throw new ApiError(0, "offline", "the server cannot be reached");
  }
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
    if (res.status === 401 && hooks.unauthorized && !path.startsWith("/console/login")) hooks.unauthorized();
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText, err.field, err.reason);
  }
  return data;
}

const DETAILED = ["bad_request", "conflict", "too_large", "unsupported_type"];

// A sentence for a person: from the stable code, the field and the kind of failure, in
// the console's language. The server's own message is shown only for codes the
// console does not know, and never a validator's pattern.
export function errorText(e, fieldLabels) {
  if (!(e instanceof ApiError)) return t("error.unexpected");
  const label = e.field ? (fieldLabels && fieldLabels[e.field]) || t("field." + e.field) : "";
  const named = label && label !== "field." + e.field ? label : e.field;
  if (e.code === "bad_request" && e.field) {
    // A field may have words of its own for a reason ("Choose at least one event.").
    const own = "error." + e.field + "." + (e.reason || "invalid");
    if (t(own) !== own) return t(own);
    const key = "error.field." + (e.reason || "invalid");
    const s = t(key, { field: named });
    return s === key ? t("error.field.invalid", { field: named }) : s;
  }
  if (e.code === "weak_password") return t("error.weak_password") + (e.message ? " " + e.message : "");
  if (e.code === "conflict" && e.field) return t("error.field.taken", { field: named });
  const key = "error." + e.code;
  const s = t(key);
  // What the server says of a refusal that names no field ("unknown time zone …") is a
  // sentence written by hand, kept beside the console's own for the detail.
  const detail = DETAILED.includes(e.code) && e.status && e.message ? " (" + e.message + ")" : "";
  if (s !== key) return s + detail;
  return t("error.other", { code: e.code }) + detail;
}

// Shows a field's error next to its input (aria-invalid, described by the message).
export function markField(form, e, fieldLabels) {
  for (const x of form.querySelectorAll(".field-error")) x.remove();
  for (const x of form.querySelectorAll("[aria-invalid]")) x.removeAttribute("aria-invalid");
  if (!(e instanceof ApiError) || !e.field) return false;
  const input = form.elements[e.field];
  if (!input || !input.id) return false;
  const msg = el("span", "field-error", errorText(e, fieldLabels));
  msg.id = input.id + "-error";
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", msg.id);
  input.after(msg);
  return true;
}

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

export function button(text, onClick, cls) {
  const b = el("button", cls || "secondary small", text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
export function linkify(parent, text) {
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

export function safeLink(url, text) {
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

export function time(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString(locale(), { dateStyle: "short", timeStyle: "short" });
}

export function row(dl, term, value) {
  if (value == null || value === "") return;
  dl.append(el("dt", null, term));
  const dd = el("dd");
  if (value instanceof Node) dd.append(value);
  else dd.textContent = String(value);
  dl.append(dd);
}

export function table(headers, rows) {
  const wrap = el("div", "table-wrap");
  const tbl = el("table", "grid");
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
  tbl.append(thead, tbody);
  wrap.append(tbl);
  return wrap;
}

// A small form: fields [{name, label, type, options, required, value, hint}];
// onSubmit(values, form) -> Promise. A refusal is shown as a sentence, beside the
// field at fault when the server names one.
export function form(id, fields, submitText, onSubmit) {
  const f = el("form", "admin-form");
  f.id = id;
  f.noValidate = true;
  const labels = {};
  for (const fd of fields) {
    const wrap = el("div", "field");
    const label = el("label", null, fd.label);
    labels[fd.name] = fd.label;
    const inputId = id + "-" + fd.name;
    label.htmlFor = inputId;
    let input;
    if (fd.options) {
      input = el("select");
      for (const o of fd.options) {
        const [value, text] = Array.isArray(o) ? o : [o, o];
        const opt = el("option", null, text);
        opt.value = value;
        input.append(opt);
      }
    } else if (fd.type === "textarea") {
      input = el("textarea");
      input.rows = 3;
    } else {
      input = el("input");
      input.type = fd.type || "text";
      input.autocomplete = fd.autocomplete || "off";
    }
    input.id = inputId;
    input.name = fd.name;
    if (fd.required) input.required = true;
    if (fd.value != null) input.value = fd.value;
    wrap.append(label, input);
    if (fd.hint) {
      const hint = el("span", "muted small", fd.hint);
      hint.id = inputId + "-hint";
      input.setAttribute("aria-describedby", hint.id);
      wrap.append(hint);
    }
    f.append(wrap);
  }
  const submit = el("button", null, submitText);
  submit.type = "submit";
  const err = el("p", "form-error");
  err.setAttribute("role", "alert");
  f.append(submit, err);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = {};
    for (const fd of fields) values[fd.name] = f.elements[fd.name].value;
    for (const fd of fields) {
      if (fd.required && !String(values[fd.name]).trim()) {
        err.textContent = t("error.field.required", { field: fd.label });
        f.elements[fd.name].focus();
        return;
      }
    }
    submit.disabled = true;
    err.textContent = "";
    markField(f, null);
    try {
      await onSubmit(values, f);
    } catch (x) {
      err.textContent = errorText(x, labels);
      if (x instanceof ApiError) err.dataset.code = x.code;
      markField(f, x, labels);
    } finally {
      submit.disabled = false;
    }
  });
  return f;
}
