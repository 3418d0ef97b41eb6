/*! chatserver widget v1: plain JS, no dependencies, no build step. See widget/README.md.
 * Privacy (docs PRIVACY.md): nothing happens until the visitor opens the chat (P11): no socket,
 * no storage. Drafts and form input live in sessionStorage, sent only on submit (P12). No
 * analytics of its own; the "analytics" hook stays silent under GPC or Do Not Track (P13). */
(function () {
  "use strict";
  if (window.ChatWidget) return;

  var script = document.currentScript ||
    document.querySelector('script[src*="widget."][data-site]') ||
    document.querySelector('script[src*="widget."]');
  var data = (script && script.dataset) || {};
  var origin = new URL(script ? script.src : location.href, location.href).origin;
  var wsURL = origin.replace(/^http/, "ws") + "/ws/visitor";
  var TOKEN_KEY = "chatserver.visitor"; // localStorage: who the visitor is, across visits
  var DRAFT_KEY = "chatserver.draft", EMAIL_KEY = "chatserver.email"; // sessionStorage (P12)
  var OUTBOX_KEY = "chatserver.outbox", STATE_KEY = "chatserver.state"; // sessionStorage
  var MAX_BODY = 10000;
  var EMAIL_RE = /^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$/;
  var nav = navigator;
  // P13: Global Privacy Control or Do Not Track: no analytics events at all.
  var noTrack = !!(nav.globalPrivacyControl || nav.doNotTrack === "1" || window.doNotTrack === "1");

  var STRINGS = {
    en: {
      launcher: "Chat with us", close: "Close chat", title: "Chat",
      placeholder: "Write a message…", send: "Send", label: "Message",
      pending: "Sending…", sent: "Sent", seen: "Seen", failed: "Not sent", retry: "Retry",
      connecting: "Connecting…", offline: "Offline. Messages will be sent when the connection is back.",
      typing: "{name} is typing…", someone: "Support", you: "You:",
      notice: "Before you write: read how we handle your chat data in our", policy: "privacy notice",
      accept: "OK, start chat", empty: "Ask us anything. We usually answer within minutes.",
      unread: "{n} unread", email: "Email",
      away: "No one is online right now. Leave a message and your email address, and we will answer by email.",
      shut: "We are closed right now. Leave a message and your email address, and we will answer by email.",
      bad: "Enter a valid email address, like name@example.com.",
      thanks: "Thanks! We got your message and will answer at {email}.",
      login: "This chat is for logged-in customers. Log in, then open the chat again.",
      attach: "Attach a file", files: "Files to send", remove: "Remove {name}", uploading: "Uploading {name}",
      tooBig: "{name} is too large to send.", badType: "{name} cannot be sent: this type of file is not accepted.",
      upFail: "{name} could not be uploaded.", download: "Download {name}", drop: "Drop files here to attach them",
      rate: "How was your chat?", comment: "Comment (optional)", rateSend: "Send rating",
      scores: ["Very poor", "Poor", "OK", "Good", "Very good"], pick: "Choose a score from 1 to 5.",
      rated: "Thanks for your feedback!", rateFail: "Your rating was not sent. Try again.",
      mailMe: "Email me this conversation", mailTo: "Send it to", mailGo: "Send", mailSending: "Sending…",
      mailSent: "The conversation is on its way to your email.",
      mailConfirm: "Check your email: open the link we sent to {email} to get the conversation.",
      mailLimited: "Too many requests. Try again later.",
      mailFail: "The conversation could not be emailed ({code}). Try again later."
    },
    nb: {
      launcher: "Chat med oss", close: "Lukk chatten", title: "Chat",
      placeholder: "Skriv en melding…", send: "Send", label: "Melding",
      pending: "Sender…", sent: "Sendt", seen: "Sett", failed: "Ikke sendt", retry: "Prøv igjen",
      connecting: "Kobler til…", offline: "Frakoblet. Meldinger sendes når forbindelsen er tilbake.",
      typing: "{name} skriver…", someone: "Kundeservice", you: "Du:",
      notice: "Før du skriver: les hvordan vi behandler chatdata i vår", policy: "personvernerklæring",
      accept: "OK, start chatten", empty: "Spør oss om hva som helst. Vi svarer vanligvis i løpet av minutter.",
      unread: "{n} uleste", email: "E-post",
      away: "Ingen er pålogget akkurat nå. Legg igjen en melding og e-postadressen din, så svarer vi på e-post.",
      shut: "Vi har stengt nå. Legg igjen en melding og e-postadressen din, så svarer vi på e-post.",
      bad: "Skriv en gyldig e-postadresse, for eksempel navn@eksempel.no.",
      thanks: "Takk! Vi har fått meldingen din og svarer til {email}.",
      login: "Chatten er for innloggede kunder. Logg inn, og åpne chatten igjen.",
      attach: "Legg ved en fil", files: "Filer som skal sendes", remove: "Fjern {name}", uploading: "Laster opp {name}",
      tooBig: "{name} er for stor til å sendes.", badType: "{name} kan ikke sendes: denne filtypen tas ikke imot.",
      upFail: "{name} kunne ikke lastes opp.", download: "Last ned {name}", drop: "Slipp filer her for å legge dem ved",
      rate: "Hvordan var chatten?", comment: "Kommentar (valgfritt)", rateSend: "Send vurdering",
      scores: ["Svært dårlig", "Dårlig", "Grei", "Bra", "Svært bra"], pick: "Velg en karakter fra 1 til 5.",
      rated: "Takk for tilbakemeldingen!", rateFail: "Vurderingen ble ikke sendt. Prøv igjen.",
      mailMe: "Send meg samtalen på e-post", mailTo: "Send den til", mailGo: "Send", mailSending: "Sender…",
      mailSent: "Samtalen er på vei til e-posten din.",
      mailConfirm: "Sjekk e-posten: åpne lenken vi sendte til {email} for å få samtalen.",
      mailLimited: "For mange forespørsler. Prøv igjen senere.",
      mailFail: "Samtalen kunne ikke sendes på e-post ({code}). Prøv igjen senere."
    },
    nn: {
      launcher: "Chat med oss", close: "Lukk chatten", title: "Chat",
      placeholder: "Skriv ei melding…", send: "Send", label: "Melding",
      pending: "Sender…", sent: "Sendt", seen: "Sett", failed: "Ikkje sendt", retry: "Prøv igjen",
      connecting: "Koplar til…", offline: "Fråkopla. Meldingane blir sende når sambandet er tilbake.",
      typing: "{name} skriv…", someone: "Kundeservice", you: "Du:",
      notice: "Før du skriv: les korleis vi handsamar chatdata i", policy: "personvernerklæringa vår",
      accept: "OK, start chatten", empty: "Spør oss om kva som helst. Vi svarar vanlegvis i løpet av nokre minutt.",
      unread: "{n} ulesne", email: "E-post",
      away: "Ingen er pålogga akkurat no. Legg att ei melding og e-postadressa di, så svarar vi på e-post.",
      shut: "Vi har stengt no. Legg att ei melding og e-postadressa di, så svarar vi på e-post.",
      bad: "Skriv ei gyldig e-postadresse, til dømes namn@eksempel.no.",
      thanks: "Takk! Vi har fått meldinga di og svarar til {email}.",
      login: "Chatten er for innlogga kundar. Logg inn, så kan du opne chatten igjen.",
      attach: "Legg ved ei fil", files: "Filer som skal sendast", remove: "Fjern {name}", uploading: "Lastar opp {name}",
      tooBig: "{name} er for stor til å sendast.", badType: "{name} kan ikkje sendast: vi tek ikkje imot denne filtypen.",
      upFail: "{name} kunne ikkje lastast opp.", download: "Last ned {name}", drop: "Slepp filer her for å leggje dei ved",
      rate: "Korleis var chatten?", comment: "Kommentar (valfritt)", rateSend: "Send vurdering",
      scores: ["Svært dårleg", "Dårleg", "Grei", "Bra", "Svært bra"], pick: "Vel ein karakter frå 1 til 5.",
      rated: "Takk for tilbakemeldinga!", rateFail: "Vurderinga vart ikkje sendt. Prøv igjen.",
      mailMe: "Send meg samtalen på e-post", mailTo: "Send samtalen til", mailGo: "Send", mailSending: "Sender…",
      mailSent: "Samtalen er på veg til e-posten din.",
      mailConfirm: "Sjekk e-posten: trykk på lenkja vi sende til {email} for å få samtalen.",
      mailLimited: "For mange førespurnader. Prøv igjen seinare.",
      mailFail: "Samtalen kunne ikkje sendast på e-post ({code}). Prøv igjen seinare."
    }
  };
  var lang = (data.locale || document.documentElement.lang || nav.language || "en").toLowerCase();
  // Nynorsk for nn, nn-NO, no-NYN; Bokmål for nb and plain no; English for the rest.
  var LANG = /^(nn|no-nyn)\b/.test(lang) ? "nn" : /^(nb|no)\b/.test(lang) ? "nb" : "en";
  var T = STRINGS[LANG];

  // Colours: every one is a custom property, so a host page can set --chat-accent,
  // --chat-on-accent, --chat-font, --chat-radius, --chat-offset, --chat-z on #chatserver-widget.
  // Both palettes pass WCAG AA (checked by axe-core in tests/browser).
  var STYLE = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font:inherit}",
    ".w{--a:var(--chat-accent,#1f5fbf);--o:var(--chat-on-accent,#fff);--r:var(--chat-radius,12px);--bg:#fff;--fg:#1d2430;--mu:#4f5968;--bu:#eef1f5;--li:#174ea6;--bo:#7d8796;--in:#fff;--er:#b3261e;--fb:#fde7e7;--ft:#8a1c1c;--sb:#fff4d6;--st:#5a4300;" +
      "position:fixed;right:var(--chat-offset,20px);bottom:var(--chat-offset,20px);z-index:var(--chat-z,2147483000);font:15px/1.4 var(--chat-font,system-ui,-apple-system,'Segoe UI',Roboto,sans-serif);color:var(--fg)}",
    ".w.dk{--bg:#1b1f27;--fg:#e8ecf2;--mu:#b0b9c6;--bu:#2c323d;--li:#9cc2ff;--bo:#7d8796;--in:#12151b;--er:#ff9a8f;--fb:#4a1f22;--ft:#ffd7d7;--sb:#3d3416;--st:#ffe7a3}",
    ".w.lt{right:auto;left:var(--chat-offset,20px)}",
    ".l{position:relative;width:56px;height:56px;border-radius:50%;border:0;background:var(--a);color:var(--o);cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.3);display:flex;align-items:center;justify-content:center;margin-left:auto}",
    ".lt .l{margin-left:0}",
    "button:focus-visible,a:focus-visible,textarea:focus-visible,input:focus-visible,.g:focus-visible{outline:3px solid #f0a500;outline-offset:2px}",
    ".l svg{width:28px;height:28px;fill:currentColor}",
    ".b{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#c62828;color:#fff;font-size:12px;font-weight:700;line-height:22px;text-align:center}",
    ".p{width:min(370px,calc(100vw - 24px));height:min(560px,calc(100vh - 110px));margin-bottom:12px;background:var(--bg);border-radius:var(--r);box-shadow:0 8px 30px rgba(0,0,0,.3);display:flex;flex-direction:column;overflow:hidden}",
    "[hidden]{display:none!important}",
    ".h{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;background:var(--a);color:var(--o);font-weight:600}",
    ".x{border:0;background:transparent;color:inherit;font-size:22px;line-height:1;cursor:pointer;padding:2px 8px;border-radius:4px}",
    ".s{padding:4px 14px;font-size:13px;background:var(--sb);color:var(--st)}",
    ".g{flex:1;overflow-y:auto;padding:12px 14px;display:flex;flex-direction:column;gap:8px}",
    ".e{color:var(--mu);font-size:14px;text-align:center;margin:auto 0}",
    ".m{max-width:82%;padding:8px 11px;border-radius:var(--r);background:var(--bu);white-space:pre-wrap;overflow-wrap:anywhere;align-self:flex-start}",
    ".m a{color:var(--li)}",
    ".m.me{align-self:flex-end;background:var(--a);color:var(--o)}",
    ".m.me a,.m.me .t{color:var(--o)}",
    ".m.sys{align-self:center;background:transparent;color:var(--mu);font-size:13px;text-align:center}",
    ".n{font-size:12px;font-weight:600;margin-bottom:2px}",
    ".t{display:block;font-size:11px;margin-top:3px;text-align:right;color:var(--mu)}",
    ".t time:not(:empty)+span:not(:empty):before{content:' · '}",
    ".m.failed{background:var(--fb);color:var(--ft)}",
    ".m.failed .t{color:var(--ft)}",
    ".r{margin-left:6px;border:1px solid currentColor;background:transparent;color:inherit;border-radius:4px;font-size:11px;cursor:pointer;padding:0 6px}",
    ".y{min-height:20px;padding:0 14px;font-size:13px;color:var(--mu);font-style:italic}",
    ".c{padding:10px 14px;font-size:13px;background:var(--bu);border-top:1px solid var(--bo)}",
    ".c a{color:var(--li)}",
    ".c button,.f button,.q button{margin-top:6px;border:0;border-radius:6px;background:var(--a);color:var(--o);padding:6px 12px;cursor:pointer;font-weight:600}",
    ".f{display:flex;flex-wrap:wrap;gap:8px;padding:10px;border-top:1px solid var(--bo)}",
    ".o{width:100%;font-size:13px}",
    ".o p{margin:0 0 6px}",
    ".o label,.q>label{display:block;font-weight:600;margin-bottom:2px}",
    ".o input,.f textarea,.q textarea{width:100%;padding:8px;border:1px solid var(--bo);border-radius:8px;font-size:15px;background:var(--in);color:var(--fg)}",
    "::placeholder{color:var(--mu);opacity:1}",
    ".o .er,.q .er{color:var(--er);margin:4px 0 0}",
    ".f textarea{flex:1;width:auto;resize:none;height:44px;max-height:120px}",
    ".f button{margin:0;border-radius:8px;padding:0 14px}",
    ".f button:disabled{opacity:.55;cursor:default}",
    ".v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    // Attachments: the attach button, the files waiting to be sent, files in bubbles.
    ".f .ab{padding:0 6px;background:transparent;color:var(--mu);display:flex;align-items:center}",
    ".ab svg{width:22px;height:22px;fill:currentColor}",
    ".at{width:100%;list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:4px;font-size:13px}",
    ".ai{display:flex;flex-wrap:wrap;align-items:center;gap:6px;padding:4px 6px;border:1px solid var(--bo);border-radius:8px}",
    ".ai img{width:36px;height:36px;object-fit:cover;border-radius:4px}",
    ".an{flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".ai progress{width:70px}",
    ".ae{width:100%;color:var(--er)}",
    ".ae:empty{display:none}",
    ".f .ax{padding:0 6px;background:transparent;color:var(--fg);font-size:18px;line-height:1}",
    ".p.dr{position:relative;outline:3px dashed var(--a);outline-offset:-6px}",
    ".p.dr:after{content:attr(data-drop);position:absolute;left:0;right:0;top:45%;text-align:center;font-weight:600;color:var(--fg);pointer-events:none}",
    ".af{list-style:none;margin:4px 0 0;padding:0;display:flex;flex-direction:column;gap:4px;white-space:normal}",
    ".fb{border:1px solid currentColor;background:transparent;color:inherit;border-radius:6px;padding:4px 8px;cursor:pointer;text-align:left;max-width:100%;overflow-wrap:anywhere;font-size:13px}",
    ".fb.im{padding:0;border:0;display:block}",
    ".fb img{display:block;max-width:100%;max-height:180px;border-radius:6px}",
    // The rating (CSAT) asked for once the conversation is resolved.
    ".q{padding:10px 14px;font-size:13px;border-top:1px solid var(--bo)}",
    ".q fieldset{border:0;margin:0;padding:0;min-width:0}",
    ".q legend{font-weight:600;padding:0;margin-bottom:6px}",
    ".qs{display:flex;gap:6px}",
    ".qs label{flex:1;position:relative}",
    ".qs b{display:block;text-align:center;padding:6px 0;border:1px solid var(--bo);border-radius:6px;cursor:pointer}",
    ".qs :checked+b{background:var(--a);color:var(--o);border-color:var(--a)}",
    ".qs :focus-visible+b{outline:3px solid #f0a500;outline-offset:2px}",
    ".ql{display:flex;justify-content:space-between;color:var(--mu);margin:2px 0 6px}",
    ".q textarea{resize:none;height:40px}",
    ".q p{margin:0}",
    // "Email me this conversation": a link-like button, then an address (unless verified).
    ".tm{padding:2px 14px 6px;font-size:13px}",
    ".tb{border:0;background:transparent;color:var(--li);text-decoration:underline;cursor:pointer;padding:2px 0;font-size:13px}",
    ".tf{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-top:4px}",
    ".tf label{width:100%;font-weight:600}",
    ".tf input{flex:1;min-width:0;padding:6px 8px;border:1px solid var(--bo);border-radius:6px;font-size:14px;background:var(--in);color:var(--fg)}",
    ".tf button{border:0;border-radius:6px;background:var(--a);color:var(--o);padding:6px 12px;cursor:pointer;font-weight:600}",
    ".tf button:disabled{opacity:.55;cursor:default}",
    ".ts{margin:4px 0 0;color:var(--mu)}",
    ".ts.er{color:var(--er)}"
  ].join("");

  // ------------------------------------------------------------------ state
  var ws = null, ready = false, attempt = 0, retryTimer = null, wanted = false, pinger = null, quiet = 0;
  var visitorId = null, convId = null, convStatus = null, lastSeq = 0, seen = {}, replaying = false;
  var policy = null, consentVersion = null, identity = data.identity || null, needLogin = false;
  var agentsOnline = null, openNow = null, agentRead = 0, savedRead = 0;
  var mailable = false, verified = false, mailRef = null, mailTo = null; // transcripts by email
  var rateFor = null, rateRef = null; // the resolved conversation asked for a rating; its pending rate
  var ratePending = null; // a rating asked for on the previous page of this tab, not yet given
  var outbox = []; // own messages not yet acked: {id, body, email, state, el}
  var isOpen = false, unread = 0, readSent = 0;
  var typingSentAt = 0, typingIdle = null, typingHide = null;
  var listeners = {};
  var ui = null;

  function emit(name, arg) {
    (listeners[name] || []).slice().forEach(function (fn) {
      try { fn(arg); } catch (e) { setTimeout(function () { throw e; }); }
    });
  }
  function track(type) { if (!noTrack) emit("analytics", { type: type }); }
  function fmt(s, v) { return s.replace(/\{(\w+)\}/g, function (_, k) { return v[k]; }); }
  function store(kind) { try { return window[kind]; } catch (e) { return null; } }
  function get(kind, key) { var s = store(kind); try { return s ? s.getItem(key) : null; } catch (e) { return null; } }
  function put(kind, key, value) {
    var s = store(kind);
    try { if (s) { if (value == null || value === "") s.removeItem(key); else s.setItem(key, value); } } catch (e) { /* full or blocked */ }
  }
  function getJSON(key) { try { return JSON.parse(get("sessionStorage", key) || "null"); } catch (e) { return null; } }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)), h = [];
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    for (var i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1));
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") + "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // Message text to DOM: text nodes, plus anchors for http(s) URLs. Never innerHTML.
  var URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  function linkify(parent, text) {
    var last = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text))) {
      var url = m[0].replace(/[.,;:!?)\]}'"]+$/, ""), href = null;
      try { href = new URL(url); } catch (e) { /* not a URL after all: stays text */ }
      if (!href || !/^https?:$/.test(href.protocol)) continue;
      parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      var a = el("a", null, url);
      a.href = href.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      parent.appendChild(a);
      last = m.index + url.length;
      URL_RE.lastIndex = last;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // Times in the visitor's own locale and time zone (Intl's defaults are the browser's).
  var DTF = Intl.DateTimeFormat;
  var fmtTime = new DTF(undefined, { hour: "2-digit", minute: "2-digit" });
  var fmtDay = new DTF(undefined, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  var fmtFull = new DTF(undefined, { dateStyle: "full", timeStyle: "short" });

  // ------------------------------------------------------------------ UI
  function build() {
    if (ui) return ui;
    var host = el("div");
    host.id = "chatserver-widget";
    var root = host.attachShadow({ mode: "open" });
    if (root.adoptedStyleSheets && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.appendChild(el("style", null, STYLE));
    }
    var w = el("div", "w" + (data.position === "left" ? " lt" : ""));
    w.lang = LANG;
    var panel = el("div", "p");
    panel.id = "cs-panel";
    panel.hidden = true;
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", T.title);
    var head = el("div", "h");
    var title = el("span", null, T.title);
    var x = el("button", "x", "×");
    x.type = "button";
    x.setAttribute("aria-label", T.close);
    head.append(title, x);
    var status = el("div", "s");
    status.hidden = true;
    status.setAttribute("role", "status");
    var log = el("div", "g");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-label", T.title);
    log.tabIndex = 0;
    var empty = el("p", "e", T.empty);
    log.appendChild(empty);
    var typing = el("div", "y");
    typing.setAttribute("aria-live", "polite");
    var consent = el("div", "c");
    consent.hidden = true;
    var form = el("form", "f");
    form.noValidate = true; // the widget says what is wrong, in the widget's language
    // The offline form: shown instead of a plain composer when no agent is online.
    var off = el("div", "o");
    off.hidden = true;
    var intro = el("p");
    var elab = el("label", null, T.email);
    elab.htmlFor = "cs-email";
    var email = el("input");
    email.id = "cs-email";
    email.type = "email";
    email.autocomplete = "email";
    email.maxLength = 254;
    email.setAttribute("aria-describedby", "cs-email-err");
    var err = el("p", "er");
    err.id = "cs-email-err";
    err.hidden = true;
    off.append(intro, elab, email, err);
    var lab = el("label", "v", T.label);
    lab.htmlFor = "cs-input";
    var input = el("textarea");
    input.id = "cs-input";
    input.rows = 1;
    input.maxLength = MAX_BODY;
    input.placeholder = T.placeholder;
    var send = el("button", null, T.send);
    send.type = "submit";
    var at = buildAttach(panel, input);
    form.append(off, at.tray, at.picker, lab, input, at.button, send);
    var rate = el("form", "q");
    rate.hidden = true;
    rate.noValidate = true;
    rate.addEventListener("submit", function (e) { e.preventDefault(); sendRating(); });
    // "Email me this conversation" (the server says in welcome whether it can).
    var tm = { box: el("div", "tm"), open: el("button", "tb", T.mailMe), form: el("div", "tf"),
      lab: el("label", null, T.mailTo), email: el("input"), go: el("button", null, T.mailGo), msg: el("p", "ts") };
    tm.box.hidden = tm.form.hidden = true;
    tm.open.type = tm.go.type = "button";
    tm.open.setAttribute("aria-expanded", "false");
    tm.open.setAttribute("aria-controls", "cs-tm-form");
    tm.form.id = "cs-tm-form";
    tm.lab.htmlFor = tm.email.id = "cs-tm-email";
    tm.email.type = "email";
    tm.email.autocomplete = "email";
    tm.email.maxLength = 254;
    tm.msg.setAttribute("role", "status");
    tm.form.append(tm.lab, tm.email, tm.go);
    tm.box.append(tm.open, tm.form, tm.msg);
    tm.open.addEventListener("click", function () {
      tm.form.hidden = !tm.form.hidden;
      tm.open.setAttribute("aria-expanded", String(!tm.form.hidden));
      if (!tm.form.hidden) (verified ? tm.go : tm.email).focus();
    });
    tm.go.addEventListener("click", requestMail);
    tm.email.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.isComposing) { e.preventDefault(); requestMail(); }
    });
    panel.append(head, status, log, typing, consent, rate, tm.box, form);
    var launcher = el("button", "l");
    launcher.type = "button";
    launcher.setAttribute("aria-label", T.launcher);
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", "cs-panel");
    launcher.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>';
    var badge = el("span", "b");
    badge.hidden = true;
    badge.setAttribute("aria-hidden", "true");
    launcher.appendChild(badge);
    w.append(panel, launcher);
    root.appendChild(w);
    document.body.appendChild(host);
    if (data.color && window.CSS && window.CSS.supports("color", data.color)) {
      host.style.setProperty("--chat-accent", data.color);
      host.style.setProperty("--chat-on-accent", onColor(root, data.color));
    }
    // Light or dark: data-theme wins, else the visitor's prefers-color-scheme, followed live.
    var mq = window.matchMedia && matchMedia("(prefers-color-scheme: dark)");
    var theme = function () { w.classList.toggle("dk", data.theme ? data.theme === "dark" : !!(mq && mq.matches)); };
    theme();
    if (mq && mq.addEventListener) mq.addEventListener("change", theme);

    launcher.addEventListener("click", function () { if (isOpen) close(); else open(); });
    x.addEventListener("click", close);
    panel.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });
    form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    });
    input.addEventListener("input", function () {
      put("sessionStorage", DRAFT_KEY, input.value);
      typingInput();
    });
    email.addEventListener("input", function () {
      put("sessionStorage", EMAIL_KEY, email.value);
      if (!err.hidden && EMAIL_RE.test(email.value.trim())) emailError(false);
    });
    ui = { root: root, w: w, panel: panel, title: title, log: log, empty: empty, typing: typing, status: status,
      consent: consent, off: off, intro: intro, email: email, err: err, input: input, send: send, rate: rate,
      launcher: launcher, badge: badge, tm: tm, tray: at.tray, attach: at.button };
    // P12: what the visitor typed on the previous page (this tab only).
    input.value = get("sessionStorage", DRAFT_KEY) || "";
    email.value = get("sessionStorage", EMAIL_KEY) || "";
    return ui;
  }

  // The text colour with more contrast on an operator's accent colour: white or black.
  function onColor(root, c) {
    var probe = el("i");
    probe.style.color = c;
    root.appendChild(probe);
    var v = (getComputedStyle(probe).color.match(/[\d.]+/g) || [0, 0, 0]).slice(0, 3).map(function (n) {
      n /= 255;
      return n <= 0.03928 ? n / 12.92 : Math.pow((n + 0.055) / 1.055, 2.4);
    });
    probe.remove();
    var L = 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
    return 1.05 / (L + 0.05) >= (L + 0.05) / 0.05 ? "#fff" : "#000";
  }

  // data-conn on the panel says where the socket stands: connecting, offline or ready
  // (welcome handled and the newest conversation resumed). Tests and styles may use it.
  function setStatus(text, conn) {
    if (!ui) return;
    ui.panel.dataset.conn = conn;
    ui.status.textContent = text || "";
    ui.status.hidden = !text;
  }

  function needConsent() { return !!(policy && policy.version && !policy.accepted); }
  function renderConsent() {
    if (!ui) return;
    var need = needConsent();
    ui.consent.hidden = !need;
    renderSend();
    ui.consent.textContent = "";
    if (!need) return;
    var p = el("p", null, T.notice + " ");
    var a = el("a", null, T.policy);
    var href = new URL(policy.url || "/privacy", origin);
    a.href = /^https?:$/.test(href.protocol) ? href.href : origin + "/privacy";
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    p.append(a, document.createTextNode("."));
    var ok = el("button", null, T.accept);
    ok.type = "button";
    ok.addEventListener("click", accept);
    ui.consent.append(p, ok);
  }

  // No agent online and nothing open to write into: offer to leave a message with an email.
  function offline() {
    return (agentsOnline === false || openNow === false) && !(convId && convStatus !== "resolved") &&
      !outbox.some(function (m) { return m.email; });
  }
  function renderMode() {
    if (!ui) return;
    var off = offline();
    ui.off.hidden = !off;
    ui.intro.textContent = openNow === false ? T.shut : T.away;
    ui.empty.textContent = off ? "" : T.empty;
    if (!off) emailError(false);
    renderMail();
  }
  // ------------------------------------------------------------------ transcript by email
  // A verified visitor's goes to their account's address; anyone else types one and
  // gets a link there to confirm it first (the server sends nothing else before that).
  function renderMail() {
    var tm = ui.tm;
    tm.box.hidden = !(mailable && convId && !needConsent());
    tm.lab.hidden = tm.email.hidden = verified;
  }
  function mailNote(text, error) {
    ui.tm.msg.textContent = text || "";
    ui.tm.msg.className = "ts" + (error ? " er" : "");
  }
  function requestMail() {
    var tm = ui.tm;
    if (!convId || mailRef) return;
    var f = { type: "transcript", conversation_id: convId, locale: LANG };
    mailTo = null;
    if (!verified) {
      mailTo = tm.email.value.trim();
      if (!EMAIL_RE.test(mailTo) || mailTo.length > 254) {
        tm.email.setAttribute("aria-invalid", "true");
        mailNote(T.bad, true);
        return tm.email.focus();
      }
      tm.email.removeAttribute("aria-invalid");
      f.email = mailTo;
    }
    f.client_msg_id = mailRef = uuid();
    if (!frame(f)) return mailFailed("unavailable");
    tm.go.disabled = true;
    mailNote(T.mailSending);
  }
  function onTranscript(f) {
    var tm = ui.tm;
    mailRef = null;
    tm.go.disabled = false;
    tm.form.hidden = true;
    tm.open.setAttribute("aria-expanded", "false");
    tm.open.focus();
    mailNote(f.status === "sent" ? T.mailSent : fmt(T.mailConfirm, { email: mailTo || "" }));
  }
  function mailFailed(code) {
    mailRef = null;
    ui.tm.go.disabled = false;
    if (code === "bad_request" && !verified) ui.tm.email.setAttribute("aria-invalid", "true");
    mailNote(code === "rate_limited" ? T.mailLimited : code === "bad_request" && !verified ? T.bad : fmt(T.mailFail, { code: code }), true);
  }

  function emailError(show) {
    ui.err.hidden = !show;
    ui.err.textContent = show ? T.bad : "";
    if (show) ui.email.setAttribute("aria-invalid", "true"); else ui.email.removeAttribute("aria-invalid");
  }

  // ------------------------------------------------------------------ rating (CSAT)
  // Asked once the conversation is resolved: a 1–5 radio group (native radios in a fieldset,
  // so keyboards and screen readers know it) and an optional comment. null hides it.
  function askRating(id) {
    if (!ui) return;
    var f = ui.rate;
    if (!id) { if (rateFor) { rateFor = null; rateRef = null; save(); } f.hidden = true; f.textContent = ""; return; }
    if (rateFor === id && !f.hidden) return;
    rateFor = id; rateRef = null;
    save();
    f.textContent = "";
    var set = el("fieldset"), legend = el("legend", null, T.rate), row = el("div", "qs");
    legend.id = "cs-rate-title";
    for (var i = 1; i <= 5; i++) {
      var lab = el("label"), r = el("input");
      r.type = "radio"; r.name = "cs-score"; r.value = String(i); r.className = "v";
      lab.append(r, el("b", null, String(i)), el("span", "v", " " + T.scores[i - 1]));
      row.appendChild(lab);
    }
    var ends = el("div", "ql");
    ends.setAttribute("aria-hidden", "true"); // the radios' own names say it
    ends.append(el("span", null, T.scores[0]), el("span", null, T.scores[4]));
    set.append(legend, row, ends);
    var clab = el("label", null, T.comment), text = el("textarea"), go = el("button", null, T.rateSend);
    clab.htmlFor = text.id = "cs-rate-comment";
    text.maxLength = 1000;
    go.type = "submit";
    var er = el("p", "er");
    er.setAttribute("role", "alert");
    row.addEventListener("change", function () { er.textContent = ""; });
    f.append(set, clab, text, go, er);
    f.hidden = false;
    scroll();
  }
  function sendRating() {
    var f = ui.rate, picked = f.querySelector("input[name=cs-score]:checked");
    var er = f.querySelector(".er");
    if (!picked) { er.textContent = T.pick; f.querySelector("input").focus(); return; }
    er.textContent = "";
    rateRef = uuid();
    var msg = { type: "rate", conversation_id: rateFor, score: +picked.value, client_msg_id: rateRef };
    var comment = f.querySelector("textarea").value.trim();
    if (comment) msg.comment = comment.slice(0, 1000);
    if (!frame(msg)) ratingFailed();
  }
  function ratingFailed() {
    rateRef = null;
    var er = ui.rate.querySelector(".er");
    if (er) er.textContent = T.rateFail;
  }
  function ratingDone() {
    var f = ui.rate, done = el("p", null, T.rated);
    done.setAttribute("role", "status");
    f.textContent = "";
    f.appendChild(done);
    rateRef = null;
    rateFor = null; // answered: not asked again after a navigation
    save();
    emit("rated");
  }

  // ------------------------------------------------------------------ attachments
  // A file goes up over HTTP as soon as it is chosen, dropped or pasted, with progress; the
  // message then names it by id. The widget lives on another site, so it never relies on
  // cookies: uploads and downloads carry the visitor token, and files come back as blobs.
  var tray = []; // files for the next message: {file, name, state: wait|up|done|failed, ref, xhr, el, url}
  var blobs = {}; // attachment id -> object URL of its downloaded bytes
  var IMAGE_RE = /^image\/(png|jpeg|gif|webp)$/;
  var MAX_FILES = 10;
  function buildAttach(panel, input) {
    var button = el("button", "ab");
    button.type = "button";
    button.setAttribute("aria-label", T.attach);
    button.title = T.attach;
    button.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M16.5 6v11.5a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6H9v9.5a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v12.5a6 6 0 0 0 12 0V6z"/></svg>';
    var picker = el("input");
    picker.type = "file";
    picker.id = "cs-file";
    picker.multiple = true;
    picker.hidden = true; // the button opens it
    picker.accept = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain";
    panel.dataset.drop = T.drop;
    var list = el("ul", "at");
    list.hidden = true;
    list.setAttribute("aria-label", T.files);
    list.setAttribute("aria-live", "polite");
    button.addEventListener("click", function () { picker.click(); });
    picker.addEventListener("change", function () { addFiles(picker.files); picker.value = ""; });
    input.addEventListener("paste", function (e) {
      var files = e.clipboardData && e.clipboardData.files;
      if (files && files.length) { e.preventDefault(); addFiles(files); }
    });
    var dragging = function (e) {
      return e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types || [], "Files") >= 0;
    };
    panel.addEventListener("dragover", function (e) {
      if (!dragging(e) || needConsent()) return;
      e.preventDefault();
      panel.classList.add("dr");
    });
    var leave = function () { panel.classList.remove("dr"); };
    panel.addEventListener("dragleave", function (e) { if (!e.relatedTarget || !panel.contains(e.relatedTarget)) leave(); });
    panel.addEventListener("drop", function (e) {
      if (!dragging(e)) return;
      e.preventDefault();
      leave();
      addFiles(e.dataTransfer.files);
    });
    return { button: button, picker: picker, tray: list };
  }
  function addFiles(files) {
    if (!files || !files.length || needConsent()) return;
    for (var i = 0; i < files.length && tray.length < MAX_FILES; i++) {
      var item = { file: files[i], name: files[i].name || "file", state: "wait" };
      item.el = trayItem(item);
      tray.push(item);
      ui.tray.appendChild(item.el);
      showItem(item);
    }
    ui.tray.hidden = !tray.length;
    upload();
    renderSend();
  }
  function trayItem(item) {
    var li = el("li", "ai");
    if (IMAGE_RE.test(item.file.type) && window.URL && URL.createObjectURL) {
      var img = el("img");
      img.alt = ""; // decorative: the file's name is beside it
      img.src = item.url = URL.createObjectURL(item.file);
      li.appendChild(img);
    }
    item.bar = el("progress");
    item.bar.max = 1;
    item.bar.value = 0;
    item.bar.setAttribute("aria-label", fmt(T.uploading, { name: item.name }));
    item.msg = el("span", "ae");
    var x = el("button", "ax", "×");
    x.type = "button";
    x.setAttribute("aria-label", fmt(T.remove, { name: item.name }));
    x.addEventListener("click", function () { removeItem(item); ui.input.focus(); });
    li.append(el("span", "an", item.name), item.bar, x, item.msg);
    return li;
  }
  function showItem(item) {
    item.el.dataset.state = item.state;
    item.bar.hidden = item.state === "done" || item.state === "failed";
    item.msg.textContent = item.state === "failed" ? fmt(item.error, { name: item.name }) : "";
  }
  // Upload what waits once the socket is ready (the visitor token is known then). A file
  // for a message that will start a conversation goes up on its own, without one.
  function upload() {
    var token = get("localStorage", TOKEN_KEY);
    if (!ready || !token) return;
    tray.forEach(function (item) {
      if (item.state !== "wait") return;
      var starts = !convId || convStatus === "resolved" || offline();
      var path = starts ? "/attachments" : "/conversations/" + encodeURIComponent(convId) + "/attachments";
      var xhr = item.xhr = new XMLHttpRequest();
      item.state = "up";
      xhr.open("POST", origin + "/api/v1" + path);
      xhr.setRequestHeader("Authorization", "Visitor " + token);
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) item.bar.value = e.loaded / e.total; };
      xhr.onload = function () {
        var answer = null;
        try { answer = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: a proxy's page */ }
        if (xhr.status === 201 && answer && answer.id) { item.state = "done"; item.ref = answer; item.bar.value = 1; }
        else upFailed(item, answer && answer.error ? answer.error.code : "internal");
        showItem(item);
        renderSend();
      };
      xhr.onerror = function () { upFailed(item, "unavailable"); showItem(item); renderSend(); };
      var body = new FormData();
      body.append("file", item.file, item.name);
      xhr.send(body);
      showItem(item);
    });
  }
  function upFailed(item, code) {
    item.state = "failed";
    item.error = code === "too_large" ? T.tooBig : code === "unsupported_type" ? T.badType : T.upFail;
    emit("error", { code: code, message: "upload failed", ref: null });
  }
  function removeItem(item) {
    if (item.state === "up" && item.xhr) item.xhr.abort();
    if (item.url && item.state !== "sent") URL.revokeObjectURL(item.url);
    item.el.remove();
    tray.splice(tray.indexOf(item), 1);
    ui.tray.hidden = !tray.length;
    renderSend();
  }
  function uploading() { return tray.some(function (i) { return i.state === "wait" || i.state === "up"; }); }
  function readyFiles() {
    return tray.filter(function (i) { return i.state === "done"; }).map(function (i) {
      return { id: i.ref.id, name: i.ref.name, size: i.ref.size, type: i.ref.type, url: i.url };
    });
  }
  // The files just sent leave the tray (their previews live on in the message); failed ones stay.
  function sentFiles() {
    tray.slice().forEach(function (i) { if (i.state === "done") { i.state = "sent"; removeItem(i); } });
  }
  function plain(list) {
    return (list || []).map(function (a) { return { id: a.id, name: a.name, size: a.size, type: a.type }; });
  }
  function renderSend() {
    if (!ui) return;
    ui.send.disabled = needConsent() || uploading();
    ui.attach.disabled = needConsent();
  }
  function fileSize(n) {
    return n < 1024 ? n + " B" : n < 1048576 ? Math.round(n / 1024) + " kB" : (n / 1048576).toFixed(1) + " MB";
  }
  // Files in a message: images as previews, others by name and size; a click downloads.
  function fileList(list) {
    var ul = el("ul", "af");
    list.forEach(function (a) {
      var li = el("li"), b = el("button", "fb");
      b.type = "button";
      b.title = fmt(T.download, { name: a.name });
      if (IMAGE_RE.test(a.type)) {
        var img = el("img");
        img.alt = a.name;
        b.className = "fb im";
        b.appendChild(img);
        if (a.url) img.src = a.url;
        else fetchFile(a, function (url) { img.src = url; });
      } else {
        b.append(el("span", null, a.name), el("span", null, " (" + fileSize(a.size) + ")"));
      }
      b.setAttribute("aria-label", fmt(T.download, { name: a.name }));
      b.addEventListener("click", function () { saveFile(a); });
      li.appendChild(b);
      ul.appendChild(li);
    });
    return ul;
  }
  function fetchFile(a, done) {
    if (blobs[a.id]) return done(blobs[a.id]);
    var xhr = new XMLHttpRequest();
    xhr.open("GET", origin + "/api/v1/attachments/" + encodeURIComponent(a.id));
    xhr.responseType = "blob";
    xhr.setRequestHeader("Authorization", "Visitor " + (get("localStorage", TOKEN_KEY) || ""));
    xhr.onload = function () {
      if (xhr.status === 200) done(blobs[a.id] = URL.createObjectURL(xhr.response));
    };
    xhr.send();
  }
  function saveFile(a) {
    fetchFile(a, function (url) {
      var link = el("a");
      link.href = url;
      link.download = a.name;
      link.hidden = true;
      ui.w.appendChild(link);
      link.click();
      link.remove();
    });
  }

  function bubble(msg, mine) {
    var d = el("div", "m" + (mine ? " me" : "") + (msg.kind === "event" || (msg.author && msg.author.role === "system") ? " sys" : ""));
    if (!mine && msg.author && msg.author.role === "agent") d.appendChild(el("div", "n", msg.author.name || T.someone));
    if (mine) d.appendChild(el("span", "v", T.you + " "));
    var body = el("span", "tx");
    linkify(body, msg.body || "");
    d.appendChild(body);
    if (msg.attachments && msg.attachments.length) d.appendChild(fileList(msg.attachments));
    var meta = el("span", "t");
    meta.append(el("time"), el("span"));
    d.appendChild(meta);
    if (msg.ts) setTime(d, msg.ts);
    if (mine) d.dataset.state = "acked";
    return d;
  }
  function setTime(d, ts) {
    var t = new Date(ts), e = d.querySelector("time");
    if (isNaN(t)) return;
    e.dateTime = ts;
    e.textContent = (t.toDateString() === new Date().toDateString() ? fmtTime : fmtDay).format(t);
    e.title = fmtFull.format(t);
  }
  // Keep the log in seq order; own unacked messages stay at the end.
  function place(d, seq) {
    var log = ui.log;
    ui.empty.hidden = true;
    d.dataset.seq = seq == null ? "" : String(seq);
    if (seq != null) {
      for (var c = log.firstChild; c; c = c.nextSibling) {
        if (c.dataset && c.dataset.seq !== undefined && (c.dataset.seq === "" || +c.dataset.seq > seq)) {
          log.insertBefore(d, c);
          return scroll();
        }
      }
    }
    log.appendChild(d);
    scroll();
  }
  function scroll() { ui.log.scrollTop = ui.log.scrollHeight; }
  function note(text) {
    var d = el("div", "m sys", text);
    ui.empty.hidden = true;
    ui.log.appendChild(d);
    scroll();
  }
  function clearLog() {
    if (!ui) return;
    Array.prototype.slice.call(ui.log.children).forEach(function (c) { if (c !== ui.empty) c.remove(); });
    ui.empty.hidden = false;
  }
  function showState(item) {
    var d = item.el, st = d.querySelector(".t span");
    d.classList.toggle("failed", item.state === "failed");
    d.dataset.state = item.state;
    st.textContent = item.state === "failed" ? T.failed : T.pending;
    if (item.state === "failed") {
      var r = el("button", "r", T.retry);
      r.type = "button";
      r.addEventListener("click", function () { item.state = "queued"; showState(item); flush(); });
      st.appendChild(r);
    }
  }
  // Own sent messages say "Sent", or "Seen" once an agent's read covers their seq.
  function showSeen() {
    if (!ui) return;
    ui.log.querySelectorAll('.me[data-state="acked"]').forEach(function (d) {
      var read = +d.dataset.seq <= agentRead;
      d.dataset.read = read;
      d.querySelector(".t span").textContent = read ? T.seen : T.sent;
    });
  }
  function setBadge() {
    if (!ui) return;
    ui.badge.hidden = !unread;
    ui.badge.textContent = unread > 99 ? "99+" : String(unread);
    ui.launcher.setAttribute("aria-label", unread ? T.launcher + " (" + fmt(T.unread, { n: unread }) + ")" : T.launcher);
  }

  // What survives a navigation in this tab (sessionStorage): messages not yet acked, whether
  // the chat was open and what was read. Written only once the visitor has opened the chat.
  function save() {
    if (!wanted) return;
    put("sessionStorage", STATE_KEY, JSON.stringify({ o: isOpen ? 1 : 0, r: readSent, q: rateFor || ratePending }));
    var keep = outbox.map(function (m) { return { i: m.id, b: m.body, e: m.email, a: plain(m.att) }; });
    put("sessionStorage", OUTBOX_KEY, keep.length ? JSON.stringify(keep) : null);
  }

  // ------------------------------------------------------------------ socket
  function connect() {
    if (ws || !wanted || needLogin) return;
    clearTimeout(retryTimer);
    ready = false;
    setStatus(attempt ? T.offline : T.connecting, attempt ? "offline" : "connecting");
    var sock;
    try { sock = new WebSocket(wsURL); } catch (e) { return reconnectLater(); }
    ws = sock;
    sock.onopen = function () {
      var hello = {
        type: "hello",
        page: { url: location.href.slice(0, 2048), title: document.title.slice(0, 2048), referrer: document.referrer.slice(0, 2048) },
        locale: lang.slice(0, 35) // the widget's language: the server's automatic replies use it
      };
      var token = get("localStorage", TOKEN_KEY);
      if (token) hello.visitor_token = token;
      if (identity) hello.identity = identity;
      if (consentVersion) hello.consent = { version: consentVersion };
      sock.send(JSON.stringify(hello));
      // An app-level ping every 25 s: a connection that died silently is noticed and replaced.
      clearInterval(pinger);
      quiet = 0;
      pinger = setInterval(function () {
        if (ws !== sock) return clearInterval(pinger);
        if (quiet++) return lost(sock);
        frame({ type: "ping" });
      }, 25000);
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      quiet = 0;
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      if (ev.code === 1013) attempt = 0; // "try again": reconnect soon and resume
      lost(sock);
    };
  }
  // Forget a socket: what it had sent without an ack goes again (same client_msg_id).
  function unplug(sock, code) {
    sock.onclose = sock.onmessage = null;
    try { sock.close(code); } catch (e) { /* already closed */ }
    clearInterval(pinger);
    ws = null;
    ready = false;
    outbox.forEach(function (m) { if (m.state === "sent") m.state = "queued"; });
  }
  function lost(sock) {
    unplug(sock);
    reconnectLater();
  }
  function reconnectLater() {
    ws = null;
    if (!wanted) return;
    if (needLogin) return setStatus(T.login, "offline");
    setStatus(T.offline, "offline");
    var cap = Math.min(10000, 500 * Math.pow(2, attempt++));
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, 250 + Math.random() * cap); // exponential, full jitter
  }
  function reconnectNow() {
    if (ws) unplug(ws, 1000);
    attempt = 0;
    connect();
  }
  function drop() {
    wanted = false;
    clearTimeout(retryTimer);
    if (ws) unplug(ws, 1000);
    setStatus("", "closed");
  }
  function frame(obj) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function onFrame(f) {
    switch (f.type) {
      case "welcome": return onWelcome(f);
      case "resumed":
        if (f.conversation_id === convId) {
          if (f.last_seq > lastSeq) lastSeq = f.last_seq; // all up to it replayed (notes skipped)
          replaying = false;
          becomeReady();
        }
        return;
      case "message": return onMessage(f);
      case "ack": return onAck(f);
      case "error": return onError(f);
      case "typing": return onTyping(f);
      case "read":
        if (f.conversation_id === convId && f.author && f.author.role === "agent" && f.seq > agentRead) {
          agentRead = f.seq;
          showSeen();
        }
        return;
      case "presence":
        if ("agents_online" in f) { agentsOnline = f.agents_online; openNow = f.open_now; renderMode(); }
        return;
      case "conversation":
        if (!convId && f.id) convId = f.id; // started in another tab
        if (f.id === convId) {
          var was = convStatus;
          convStatus = f.status;
          ui.title.textContent = T.title + (f.assignee && f.assignee.name ? " · " + f.assignee.name : "");
          renderMode();
          // Asked when it becomes resolved (not on a later change of a resolved one).
          if (f.status === "resolved" && was !== "resolved") askRating(f.id);
          else if (f.status !== "resolved" && rateFor === f.id) askRating(null); // reopened
        }
        return;
      case "transcript_requested":
        if (ui && mailRef) onTranscript(f);
        return;
      case "rated":
        if (f.conversation_id === rateFor) ratingDone();
        return;
    }
  }

  function onWelcome(f) {
    attempt = 0;
    if (visitorId && f.visitor_id !== visitorId) resetConversation(); // token forgotten by the server
    visitorId = f.visitor_id;
    put("localStorage", TOKEN_KEY, f.visitor_token); // only ever reached after the visitor opened the chat
    policy = f.policy || null;
    if (!policy || policy.accepted || policy.version !== consentVersion) consentVersion = null;
    renderConsent();
    agentsOnline = f.agents_online !== false; // a server without the field: assume someone answers
    openNow = f.open_now;
    mailable = !!f.email_transcripts;
    verified = !!f.account;
    if (mailRef) mailFailed("unavailable"); // asked on the socket that was lost: no answer comes
    var list = f.conversations || [], conv = null;
    for (var i = 0; i < list.length; i++) if (list[i].id === convId) conv = list[i];
    if (!conv && list.length) conv = list[list.length - 1]; // the server lists oldest first
    if (conv) {
      if (conv.id !== convId) { resetConversation(); convId = conv.id; }
      convStatus = conv.status;
      if (conv.status === "resolved" && ratePending === conv.id) askRating(conv.id);
      ratePending = null;
      if (conv.agent_read_seq > agentRead) agentRead = conv.agent_read_seq; // "Seen" survives a reload
      replaying = lastSeq ? "missed" : "history"; // history on a fresh page is not all "unread"
      frame({ type: "resume", conversation_id: conv.id, after_seq: Math.min(lastSeq, conv.last_seq) });
    } else {
      becomeReady();
    }
    renderMode();
  }
  function resetConversation() {
    askRating(null);
    convId = null; convStatus = null; lastSeq = 0; seen = {}; readSent = 0; agentRead = 0;
    var keep = outbox.filter(function (m) { return m.state !== "acked"; });
    clearLog();
    keep.forEach(function (m) { place(m.el, null); });
  }
  // A new conversation after a resolved one: the old one stays in view, above, as history.
  function archive() {
    askRating(null);
    ui.log.querySelectorAll("[data-seq]").forEach(function (c) {
      if (c.dataset.seq !== "") { c.dataset.seq = "-1"; c.removeAttribute("data-state"); }
    });
    convId = null; lastSeq = 0; seen = {}; readSent = 0; agentRead = 0;
  }
  function becomeReady() {
    ready = true;
    setStatus("", "ready");
    // Sends that failed for a passing reason go again, with the same client_msg_id.
    outbox.forEach(function (m) {
      if (m.state === "failed" && /^(unavailable|rate_limited|internal)$/.test(m.error)) { m.state = "queued"; showState(m); }
    });
    flush();
    upload();
    markRead();
  }

  function onMessage(f) {
    if (!convId) convId = f.conversation_id;
    if (f.conversation_id !== convId || seen[f.seq] || f.kind === "note") return;
    seen[f.seq] = true;
    if (f.seq > lastSeq) lastSeq = f.seq;
    build();
    var mine = f.author && f.author.role === "visitor";
    place(bubble(f, mine), f.seq);
    if (mine) showSeen();
    if (f.author && f.author.role === "agent") hideTyping();
    if (!mine && (replaying !== "history" || f.seq > savedRead) && !(isOpen && !document.hidden)) {
      unread++; setBadge(); emit("unread", unread);
    }
    emit("message", { conversation_id: f.conversation_id, seq: f.seq, ts: f.ts, author: f.author, body: f.body, kind: f.kind, attachments: f.attachments || [], replay: !!replaying });
    markRead();
  }

  function onAck(f) {
    var item = null;
    for (var i = 0; i < outbox.length; i++) if (outbox[i].id === f.client_msg_id) item = outbox[i];
    if (!item) return;
    outbox.splice(outbox.indexOf(item), 1);
    if (convId && f.conversation_id !== convId) archive(); // a new one after a resolved one
    if (!convId) { convId = f.conversation_id; convStatus = item.email ? "pending" : "open"; }
    item.state = "acked";
    if (seen[f.seq]) {
      item.el.remove(); // already shown by a resume replay after a reconnect
    } else {
      seen[f.seq] = true;
      if (f.seq > lastSeq) lastSeq = f.seq;
      setTime(item.el, f.ts);
      item.el.dataset.state = "acked";
      item.el.classList.remove("failed");
      place(item.el, f.seq);
      showSeen();
    }
    if (item.email) {
      note(fmt(T.thanks, { email: item.email }));
      put("sessionStorage", EMAIL_KEY, null);
      ui.email.value = "";
    }
    save();
    renderMode();
    emit("message", { conversation_id: f.conversation_id, seq: f.seq, ts: f.ts, author: { role: "visitor", id: visitorId, name: null }, body: item.body, kind: "text", attachments: plain(item.att), replay: false });
    flush();
  }

  function onError(f) {
    emit("error", { code: f.code, message: f.message, ref: f.ref });
    // A "verified only" site: no retrying until the host page calls identify().
    if (f.code === "verification_required") needLogin = true;
    if (!f.ref) return;
    if (f.ref === rateRef) return ratingFailed();
    if (f.ref === mailRef) return mailFailed(f.code);
    outbox.slice().forEach(function (m) {
      if (m.id !== f.ref || m.state === "acked") return;
      if (m.email && /^bad_(request|frame)$/.test(f.code)) {
        // The server refused the contact: back into the form, nothing was stored.
        outbox.splice(outbox.indexOf(m), 1);
        m.el.remove();
        if (!ui.input.value) ui.input.value = m.body;
        ui.email.value = m.email;
        save();
        renderMode();
        emailError(true);
        return;
      }
      m.state = "failed"; m.error = f.code; showState(m);
    });
    flush();
  }

  function onTyping(f) {
    if (!ui || f.conversation_id !== convId || !f.author || f.author.role === "visitor") return;
    clearTimeout(typingHide);
    if (!f.state) return hideTyping();
    ui.typing.textContent = fmt(T.typing, { name: f.author.name || T.someone });
    typingHide = setTimeout(hideTyping, 8000);
  }
  function hideTyping() { if (ui) ui.typing.textContent = ""; }

  // ------------------------------------------------------------------ sending
  function submit() {
    var text = ui.input.value, email = null, files = readyFiles();
    if ((!text.trim() && !files.length) || uploading()) return;
    if (offline()) {
      email = ui.email.value.trim();
      if (!EMAIL_RE.test(email) || email.length > 254) { emailError(true); ui.email.focus(); return; }
      emailError(false);
    }
    if (needConsent()) { var b = ui.consent.querySelector("button"); if (b) b.focus(); return; }
    ui.input.value = "";
    put("sessionStorage", DRAFT_KEY, null);
    stopTyping();
    queue({ id: uuid(), body: text.slice(0, MAX_BODY), email: email, att: files });
    sentFiles();
    renderMode();
    flush();
    track("send");
  }
  function queue(item) {
    item.state = "queued";
    item.el = bubble({ body: item.body, attachments: item.att }, true);
    showState(item);
    place(item.el, null);
    outbox.push(item);
    save();
  }
  // Send what waits, in order. A message that starts a conversation (the first one, one
  // after the last was resolved, or one with a contact email) goes alone: later ones wait
  // for its ack to name the conversation.
  function flush() {
    if (!ready || needConsent()) return;
    for (var i = 0; i < outbox.length; i++) {
      var m = outbox[i], starts = !!m.email || !convId || convStatus === "resolved";
      if (starts && m.state === "sent") return;
      if (m.state !== "queued") continue;
      var f = { type: "send", client_msg_id: m.id, body: m.body };
      if (m.att && m.att.length) f.attachments = m.att.map(function (a) { return a.id; });
      if (!starts) f.conversation_id = convId;
      else if (m.email) f.contact = { email: m.email };
      if (!frame(f)) return;
      m.state = "sent";
      if (starts) return;
    }
  }
  function typingInput() {
    if (!convId || !ready) return;
    var now = Date.now();
    if (now - typingSentAt >= 2000) { // at most one "typing" every 2 s
      typingSentAt = now;
      frame({ type: "typing", conversation_id: convId, state: true });
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(stopTyping, 3000);
  }
  function stopTyping() {
    clearTimeout(typingIdle);
    if (typingSentAt && convId && ready) frame({ type: "typing", conversation_id: convId, state: false });
    typingSentAt = 0;
  }
  function markRead() {
    if (!isOpen || document.hidden) return;
    if (unread) { unread = 0; setBadge(); emit("unread", 0); }
    if (ready && convId && lastSeq > readSent) {
      readSent = lastSeq;
      frame({ type: "read", conversation_id: convId, seq: lastSeq });
      save();
    }
  }
  // The visitor accepted the notice. A socket takes one hello, so reconnect
  // at once with the consent in the new hello; the server records it.
  function accept() {
    if (!policy || !policy.version) return;
    consentVersion = policy.version;
    policy.accepted = true; // optimistic; the next welcome says what the server recorded
    renderConsent();
    reconnectNow();
    (offline() && !EMAIL_RE.test(ui.email.value) ? ui.email : ui.input).focus();
  }

  // ------------------------------------------------------------------ API
  function open(restore) {
    build();
    if (!isOpen) {
      isOpen = true;
      ui.panel.hidden = false;
      ui.launcher.setAttribute("aria-expanded", "true");
      if (restore !== true) {
        ui.input.focus();
        emit("open");
        track("open");
      }
    }
    wanted = true;
    save();
    connect();
    markRead();
  }
  function close() {
    if (!isOpen) return;
    var inside = ui.root.activeElement && ui.panel.contains(ui.root.activeElement);
    isOpen = false;
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    if (inside) ui.launcher.focus();
    save();
    emit("close");
    track("close");
  }
  function identify(token) {
    identity = token || null;
    if (needLogin && identity) { needLogin = false; if (isOpen && !ws) connect(); }
    if (ws) reconnectNow(); // one hello per socket
  }
  function logout() {
    close();
    drop();
    [DRAFT_KEY, EMAIL_KEY, OUTBOX_KEY, STATE_KEY].forEach(function (k) { put("sessionStorage", k, null); });
    put("localStorage", TOKEN_KEY, null);
    identity = null; visitorId = null; policy = null; consentVersion = null; outbox = []; agentsOnline = null;
    mailable = verified = false; mailRef = null;
    tray.slice().forEach(removeItem);
    resetConversation();
    if (ui) { ui.input.value = ui.email.value = ""; renderConsent(); renderMode(); }
    unread = 0; setBadge();
  }
  function on(name, fn) {
    (listeners[name] = listeners[name] || []).push(fn);
    return function () { var l = listeners[name]; l.splice(l.indexOf(fn), 1); };
  }

  // A visitor who opened the chat earlier in this tab keeps it across navigation: the
  // socket comes back (for unread replies), with the panel open if it was, and unsent
  // messages are sent. A tab where the chat was never opened stays untouched (P11).
  function start() {
    build();
    var st = getJSON(STATE_KEY);
    if (!st) return;
    savedRead = readSent = st.r || 0;
    ratePending = st.q || null; // asked again once the welcome says it is still resolved
    (getJSON(OUTBOX_KEY) || []).forEach(function (m) { queue({ id: m.i, body: m.b, email: m.e || null, att: m.a || null }); });
    if (st.o) open(true);
    else { wanted = true; connect(); }
  }

  document.addEventListener("visibilitychange", function () {
    markRead();
    if (!document.hidden && wanted && !ws) reconnectNow();
  });
  window.addEventListener("online", function () { if (wanted && !ws) reconnectNow(); });

  window.ChatWidget = { open: open, close: close, identify: identify, logout: logout, on: on };
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
