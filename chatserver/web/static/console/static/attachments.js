// Files in a message, for the console: images as previews, every file as a download link.
// The console is on the server's own origin, so the session cookie reaches the files; the
// server serves only raster images inline and everything else as a download, sandboxed.

import { locale, t } from "./i18n.js";

const IMAGE = /^image\/(png|jpeg|gif|webp)$/;

function fileSize(n) {
  const num = (x, digits) =>
    new Intl.NumberFormat(locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
  if (n < 1024) return t("files.bytes", { n: num(n, 0) });
  if (n < 1048576) return t("files.kb", { n: num(Math.round(n / 1024), 0) });
  return t("files.mb", { n: num(n / 1048576, 1) });
}

function fileURL(a) {
  return `/api/v1/attachments/${encodeURIComponent(a.id)}`;
}

// A <ul> of the message's attachments, or null when it has none. (A second argument,
// the console's t, is accepted and not needed: the strings come from i18n.js.)
export function attachmentList(list) {
  if (!list || !list.length) return null;
  const ul = document.createElement("ul");
  ul.className = "files";
  ul.setAttribute("aria-label", t("thread.attachments"));
  for (const a of list) {
    const li = document.createElement("li");
    li.dataset.attachment = a.id;
    if (IMAGE.test(a.type)) {
      const img = document.createElement("img");
      img.src = fileURL(a);
      img.alt = a.name;
      img.loading = "lazy";
      img.className = "preview";
      li.append(img);
    }
    const link = document.createElement("a");
    link.href = `${fileURL(a)}?download=1`;
    link.download = a.name;
    link.className = "download";
    link.textContent = a.name;
    const meta = document.createElement("span");
    meta.className = "muted";
    meta.textContent = ` (${a.type}, ${fileSize(a.size)})`;
    li.append(link, meta);
    ul.append(li);
  }
  return ul;
}
