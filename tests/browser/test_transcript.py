"""The export transcript opened from disk in real Chromium: script-like text in messages, names,
tags and URLs stays text. Checked with the page's Content-Security-Policy in force and with it
bypassed, so the escaping alone is shown to be enough."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Dialog, Request, expect

from chatserver.privacy.export_files import transcript_html
from tests.privacy.test_export_files import make_export

NewContext = Callable[..., BrowserContext]

BODIES = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    '<svg onload="window.__xss=3"></svg>',
    "<script>alert(1)</script><img src=x onerror=alert(2)>",
    '"><iframe src="javascript:window.__xss=5"></iframe>',
    "Line one\n<b>line two</b>",
]
NAME = '<img src=x onerror="window.__xss=6">Mallory'
TAG = "<svg onload=alert(7)>"
PAGE_URL = "javascript:window.__xss=4;alert(4)"


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["csp", "no-csp"])
def test_payloads_in_the_transcript_are_inert_and_shown_literally(
    new_context: NewContext, tmp_path: Path, bypass_csp: bool
) -> None:
    export = make_export(bodies=BODIES, name=NAME, tags=[TAG], page_url=PAGE_URL)
    path = tmp_path / "transcript.html"
    path.write_text(transcript_html(export), encoding="utf-8")

    context = new_context(bypass_csp=bypass_csp, java_script_enabled=True)
    page = context.new_page()
    dialogs: list[str] = []
    requests: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_request(request: Request) -> None:
        requests.append(request.url)

    page.on("dialog", on_dialog)
    page.on("request", on_request)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")

    expect(page.get_by_role("heading", level=1)).to_have_text("Your data from the chat")
    for body in BODIES:
        expect(page.get_by_text(body, exact=True)).to_be_visible()
    expect(page.get_by_text(NAME).first).to_be_visible()
    expect(page.get_by_text(f"Visitor: {NAME}").first).to_be_visible()
    expect(page.get_by_text(TAG, exact=True)).to_be_visible()
    url = page.get_by_text(PAGE_URL, exact=True)
    expect(url).to_be_visible()
    # The URL is text, not a link: clicking it goes nowhere.
    url.click()
    assert page.url == path.as_uri()

    # pre-wrap shows the typed line break as one.
    multiline = page.get_by_text(BODIES[-1], exact=True)
    assert multiline.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    assert multiline.evaluate("e => e.innerText") == BODIES[-1]

    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    assert page.locator("script, img, svg, iframe, object, embed").count() == 0
    hrefs = page.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith("#") for h in hrefs), hrefs
    assert requests == [path.as_uri()]


def test_the_policy_blocks_script_even_if_markup_got_in(
    new_context: NewContext, tmp_path: Path
) -> None:
    # Defence in depth: were the escaping ever to fail, the page's own policy still runs none
    # of it. Planted after rendering, as a broken template would.
    html = transcript_html(make_export())
    planted = html.replace(
        "</main>",
        '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"></main>',
    )
    assert planted != html
    path = tmp_path / "transcript.html"
    path.write_text(planted, encoding="utf-8")

    page = new_context().new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")

    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert page.evaluate("window.__xss") is None
    assert any("Content Security Policy" in e for e in errors), errors


def test_the_norwegian_transcript_is_declared_norwegian(
    new_context: NewContext, tmp_path: Path
) -> None:
    path = tmp_path / "transcript.html"
    path.write_text(transcript_html(make_export(), locale="nb"), encoding="utf-8")

    page = new_context(locale="nb-NO").new_page()
    page.goto(path.as_uri())

    assert page.evaluate("document.documentElement.lang") == "nb"
    assert page.title() == "Dine data fra chatten"
    expect(page.get_by_role("heading", name="Samtaler")).to_be_visible()
    expect(page.get_by_text("Internt notat")).to_be_visible()
