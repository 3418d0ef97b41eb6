// Files in a message, for the console: images as previews, every file as a download link.
// The console is on the server's own origin, so the session cookie reaches the files; the
// server serves only raster images inline and everything else as a download, sandboxed.

const IMAGE = /^image\/(png|jpeg|gif|webp)$/;

function fileSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${Math.round(n / 1024)} kB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}

function fileURL(a) {
  return `/api/v1/attachments/${encodeURIComponent(a.id)}`;
}

// A <ul> of the message's attachments, or null when it has none.
export function attachmentList(list, t) {
  if (!list || !list.length) return null;
  const ul = document.createElement("ul");
  ul.className = "files";
  ul.setAttribute("aria-label", t ? t("thread.attachments") : "Attachments");
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
