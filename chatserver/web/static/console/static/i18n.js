// The console's strings: one catalogue per language (i18n/en.js, nb.js, nn.js), every
// key in each. t("key", {name}) fills {name}; tn("key", n) picks key.one / key.other by
// the language's plural rules. Elements in index.html name their string with
// data-i18n (text), data-i18n-placeholder, data-i18n-title and data-i18n-aria.

import en from "./i18n/en.js";
import nb from "./i18n/nb.js";
import nn from "./i18n/nn.js";

export const CATALOGUES = { en, nb, nn };
export const LANGUAGES = [
  ["en", "English"],
  ["nb", "Norsk bokmål"],
  ["nn", "Norsk nynorsk"],
];

let lang = "en";
let strings = en;
let plural = new Intl.PluralRules("en");

// The browser's choice when the agent has not picked one: nn for nn/nno, nb for nb/no.
export function browserLanguage() {
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const s = String(l).toLowerCase();
    if (s.startsWith("nn") || s === "no-nyn") return "nn";
    if (s.startsWith("nb") || s === "no" || s.startsWith("no-")) return "nb";
    if (s.startsWith("en")) return "en";
  }
  return "en";
}

export function language() {
  return lang;
}

export function setLanguage(choice) {
  lang = CATALOGUES[choice] ? choice : browserLanguage();
  strings = CATALOGUES[lang];
  plural = new Intl.PluralRules(lang);
  document.documentElement.lang = lang;
  translatePage(document);
}

export function t(key, vars) {
  let s = strings[key];
  if (s == null) s = en[key];
  if (s == null) return key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

export function tn(key, n, vars) {
  const form = plural.select(n) === "one" ? "one" : "other";
  return t(key + "." + form, { n, ...(vars || {}) });
}

export function translatePage(root) {
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll("[data-i18n-placeholder]")) e.placeholder = t(e.dataset.i18nPlaceholder);
  for (const e of root.querySelectorAll("[data-i18n-title]")) e.title = t(e.dataset.i18nTitle);
  for (const e of root.querySelectorAll("[data-i18n-aria]")) e.setAttribute("aria-label", t(e.dataset.i18nAria));
}

// Dates and times in the console's language.
export function locale() {
  return lang === "en" ? undefined : lang === "nn" ? "nn-NO" : "nb-NO";
}
