// Files an agent attaches to the reply: picked, dropped or pasted, each uploaded at once
// (POST /api/v1/conversations/{id}/attachments, the same limits, type checks and
// privacy treatment as a visitor's), then sent with the message by id.

import { api, button, el, enc, errorText } from "./core.js";
import { t } from "./i18n.js";

export class Uploads {
  // opts: {list: () => <ul>, error: (text) => void, conversation: () => id}
  constructor(opts) {
    this.opts = opts;
    this.items = []; // {file, state: "uploading" | "done" | "failed", id, meta, el}
    this.conversation = null;
  }

  reset(conversationId) {
    this.conversation = conversationId;
    this.items = [];
    this.render();
  }

  busy() {
    return this.items.some((i) => i.state === "uploading");
  }

  ready() {
    return this.items.filter((i) => i.state === "done");
  }

  add(files) {
    const cid = this.opts.conversation();
    if (!cid) return;
    this.opts.error("");
    for (const file of files) {
      const item = { file, state: "uploading", id: null, meta: null };
      this.items.push(item);
      this.upload(cid, item);
    }
    this.render();
  }

  async upload(cid, item) {
    const body = new FormData();
    body.append("file", item.file, item.file.name);
    try {
      const meta = await api("POST", `/api/v1/conversations/${enc(cid)}/attachments`, body);
      if (this.conversation !== cid) return;
      item.state = "done";
      item.id = meta.id;
      item.meta = meta;
    } catch (e) {
      if (this.conversation !== cid) return;
      item.state = "failed";
      this.opts.error(t("composer.upload_failed", { name: item.file.name, why: errorText(e) }));
    }
    this.render();
  }

  render() {
    const ul = this.opts.list();
    ul.replaceChildren(
      ...this.items.map((item) => {
        const li = el("li", "composer-file");
        li.dataset.state = item.state;
        li.append(el("span", "composer-file-name", item.file.name));
        const st = item.state === "uploading" ? t("composer.uploading") : item.state === "failed" ? t("composer.upload_error") : "";
        if (st) li.append(el("span", "muted", st));
        const remove = button("×", () => {
          this.items = this.items.filter((x) => x !== item);
          this.render();
        });
        remove.setAttribute("aria-label", t("composer.remove_file", { name: item.file.name }));
        li.append(remove);
        return li;
      }),
    );
  }
}
