"""Attachments in real Chromium: a visitor on the operator's site (another origin) attaches an
image and a PDF in the widget, the agent sees the preview in the console and downloads the
same bytes; the agent's file reaches the widget the same way; drag and drop, paste, a
refused file and the Norwegian labels; no serious accessibility violations."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.support import (
    TIMEOUT,
    Agent,
    ChatServer,
    StaticSite,
    axe_violations,
    conversation_id,
    load,
    message_box,
    open_chat,
    own_acked,
    panel,
)
from tests.web.test_attachments import PDF, png

NewContext = Callable[..., BrowserContext]
HTML_AS_PNG = b"<!doctype html><script>alert(document.domain)</script>"


def tray(page: Page) -> Any:
    return page.locator("#cs-panel .at .ai")


def sign_in_console(page: Page, chat: ChatServer) -> None:
    page.goto(chat.url + "/console")
    page.get_by_label("Email").fill(chat.email)
    page.get_by_label("Password").fill(chat.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("body")).to_have_attribute("data-socket", "live")


def image_loaded(page: Page, selector: str) -> None:
    """Wait until the image is decoded (it came from the server and is a real picture)."""
    page.wait_for_function(
        """sel => { const i = document.querySelector(sel) ||
                    document.querySelector('#chatserver-widget').shadowRoot.querySelector(sel);
                    return !!i && i.complete && i.naturalWidth > 0; }""",
        arg=selector,
        timeout=TIMEOUT * 1000,
    )


def upload_as_agent(
    chat: ChatServer, cid: str, name: str, data: bytes, mime: str
) -> dict[str, Any]:
    r = httpx.post(
        f"{chat.url}/api/v1/conversations/{cid}/attachments",
        files={"file": (name, data, mime)},
        headers={"Authorization": f"Bearer {chat.token}"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_visitor_attaches_an_image_and_a_pdf_and_the_agent_gets_the_same_bytes(
    chat: ChatServer, site: StaticSite, agent: Agent, new_context: NewContext
) -> None:
    """The visitor picks a picture and a PDF with the file chooser before writing anything;
    both upload with previews, go with the first message, and show in the widget. In the
    console the agent sees the picture and downloads both files byte for byte; the agent's
    own files come back to the widget (fetched across origins with the visitor token) and
    download byte for byte there too."""
    image, receipt = png(width=24, height=16, seed=3), PDF + b"% receipt 42\n"
    page = new_context().new_page()
    load(page, site.page("attachments.html", chat))
    open_chat(page, consent=True)

    # Before any conversation exists: choose two files with the file chooser.
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach a file").click()
    chooser.value.set_files(
        [
            {"name": "damage.png", "mimeType": "image/png", "buffer": image},
            {"name": "receipt.pdf", "mimeType": "application/pdf", "buffer": receipt},
        ]
    )
    expect(tray(page).and_(page.locator('[data-state="done"]'))).to_have_count(2)
    expect(tray(page).first.locator("img")).to_be_visible()  # a preview of the picture
    expect(page.get_by_role("button", name="Remove receipt.pdf")).to_be_visible()
    message_box(page).fill("The parcel arrived broken, photo and receipt attached")
    message_box(page).press("Enter")
    expect(own_acked(page)).to_have_count(1)
    expect(tray(page)).to_have_count(0)
    mine = own_acked(page).first
    expect(mine.get_by_role("img", name="damage.png")).to_be_visible()
    expect(mine.get_by_role("button", name="Download receipt.pdf")).to_be_visible()
    cid = conversation_id(page)
    sent = chat.messages(cid)[0]["attachments"]
    assert {(a["name"], a["type"], a["size"]) for a in sent} == {
        ("damage.png", "image/png", len(image)),
        ("receipt.pdf", "application/pdf", len(receipt)),
    }

    # The agent's console shows the picture and downloads both files, byte for byte.
    console = new_context(viewport={"width": 1360, "height": 820}).new_page()
    sign_in_console(console, chat)
    console.select_option("#view-filter", "")
    console.select_option("#status-filter", "")
    console.locator(f'#conversations button[data-id="{cid}"]').click()
    preview = console.locator('#messages img.preview[alt="damage.png"]')
    expect(preview).to_be_visible()
    image_loaded(console, '#messages img.preview[alt="damage.png"]')
    for name, data in (("damage.png", image), ("receipt.pdf", receipt)):
        with console.expect_download() as download:
            console.locator("#messages a.download", has_text=name).click()
        assert download.value.suggested_filename == name
        assert Path(download.value.path()).read_bytes() == data

    # The agent answers with a file of their own: it reaches the widget, across origins.
    invoice = PDF + b"% invoice 7\n"
    label = png(width=8, height=8, seed=9)
    refs = [
        upload_as_agent(chat, cid, "invoice.pdf", invoice, "application/pdf"),
        upload_as_agent(chat, cid, "label.png", label, "image/png"),
    ]
    chat.api(
        "POST",
        f"/conversations/{cid}/messages",
        {
            "client_msg_id": str(uuid.uuid4()),
            "body": "Sorry! Here is a new label.",
            "attachments": [r["id"] for r in refs],
        },
    )
    reply = page.locator("#cs-panel .m:not(.me)", has_text="Here is a new label")
    expect(reply.get_by_role("button", name="Download invoice.pdf")).to_be_visible()
    image_loaded(page, '.m:not(.me) img[alt="label.png"]')
    with page.expect_download() as download:
        reply.get_by_role("button", name="Download invoice.pdf").click()
    assert download.value.suggested_filename == "invoice.pdf"
    assert Path(download.value.path()).read_bytes() == invoice
    got = page.evaluate(
        "() => window.__chat.filter(m => m.attachments.length).map(m => m.attachments.map(a => a.name))"
    )
    assert sorted(map(sorted, got)) == [["damage.png", "receipt.pdf"], ["invoice.pdf", "label.png"]]


def test_drag_and_drop_paste_and_a_refused_file_in_norwegian(
    chat: ChatServer, site: StaticSite, agent: Agent, new_context: NewContext
) -> None:
    """A file dropped on the panel and an image pasted into the message box are attached;
    an HTML page named .png is refused with the reason shown beside it, and can be removed;
    the labels are Norwegian on a Norwegian page, and axe finds no serious violation."""
    page = new_context(locale="nb-NO").new_page()
    load(page, site.page("attachments-nb.html", chat, lang="nb", attrs='data-locale="nb"'))
    open_chat(page, consent=True, accept="OK, start chatten", name="Chat med oss")
    attach = page.get_by_role("button", name="Legg ved en fil")
    expect(attach).to_be_enabled()

    dropped = page.evaluate_handle(
        """files => { const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(files.pdf)], 'kvittering.pdf', {type: 'application/pdf'}));
            dt.items.add(new File([new Uint8Array(files.html)], 'side.png', {type: 'image/png'}));
            return dt; }""",
        {"pdf": list(PDF), "html": list(HTML_AS_PNG)},
    )
    panel(page).dispatch_event("dragover", {"dataTransfer": dropped})
    expect(panel(page)).to_have_class("p dr")  # the drop hint shows
    panel(page).dispatch_event("drop", {"dataTransfer": dropped})
    expect(panel(page)).to_have_class("p")
    expect(tray(page)).to_have_count(2)
    refused = tray(page).filter(has_text="side.png")
    expect(refused).to_have_attribute("data-state", "failed")
    expect(refused).to_contain_text("side.png kan ikke sendes: denne filtypen tas ikke imot.")
    expect(tray(page).filter(has_text="kvittering.pdf")).to_have_attribute("data-state", "done")

    pasted = png(width=4, height=4, seed=5)
    # A paste event as the browser makes it when an image is on the clipboard.
    page.evaluate(
        """bytes => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], 'image.png', {type: 'image/png'}));
            const box = document.querySelector('#chatserver-widget').shadowRoot
                .querySelector('#cs-input');
            box.dispatchEvent(new ClipboardEvent('paste', {
                clipboardData: dt, bubbles: true, cancelable: true, composed: true}));
        }""",
        list(pasted),
    )
    expect(tray(page).and_(page.locator('[data-state="done"]'))).to_have_count(2)
    assert axe_violations(page) == []

    page.get_by_role("button", name="Fjern side.png").click()
    expect(tray(page)).to_have_count(2)
    page.get_by_role("button", name="Send").click()  # no text: the files alone
    expect(own_acked(page)).to_have_count(1)
    cid = conversation_id(page)
    names = sorted(a["name"] for a in chat.messages(cid)[0]["attachments"])
    assert names == ["image.png", "kvittering.pdf"]
    assert chat.messages(cid)[0]["body"] == ""
    stored = httpx.get(
        f"{chat.url}/api/v1/attachments/"
        + next(a["id"] for a in chat.messages(cid)[0]["attachments"] if a["name"] == "image.png"),
        headers={"Authorization": f"Bearer {chat.token}"},
        timeout=TIMEOUT,
    )
    assert stored.content == pasted
