"""Embedding: the widget on another origin's page (a static site on its own port, allowed by
the chat server's CHATSERVER_ALLOWED_ORIGINS), and the looks a host page can choose."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, WebSocket, expect

from tests.browser.support import (
    ROOT,
    Agent,
    ChatServer,
    StaticSite,
    bubble_texts,
    conversation_id,
    load,
    message_box,
    open_chat,
    own_acked,
    panel,
    visitor_send,
)

NewContext = Callable[..., BrowserContext]
EXAMPLE = ROOT / "chatserver" / "web" / "static" / "widget" / "example"


def test_cross_origin_embed_on_another_port(
    chat: ChatServer, site: StaticSite, agent: Agent, new_context: NewContext
) -> None:
    assert site.origin != chat.url
    url = site.page(
        "shop-nb.html",
        chat,
        lang=None,
        attrs='data-locale="nb" data-theme="dark" data-color="#0a7d3b" data-position="left"',
    )
    context = new_context()
    page = context.new_page()
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    load(page, url)
    assert sockets == []

    # Norwegian, green, on the left.
    launcher = page.get_by_role("button", name="Chat med oss")
    expect(launcher).to_have_css("background-color", "rgb(10, 125, 59)")
    expect(launcher).to_have_css("color", "rgb(255, 255, 255)")  # white reads best on it
    box = launcher.bounding_box()
    assert box is not None and box["x"] < 100, box

    open_chat(page, consent=True, accept="OK, start chatten", name="Chat med oss")
    assert [ws.url for ws in sockets] == [chat.ws_url + "/ws/visitor"] * len(sockets)
    expect(panel(page)).to_have_css("background-color", "rgb(27, 31, 39)")  # data-theme dark
    visitor_send(page, "Hei fra en annen side")
    expect(own_acked(page)).to_have_count(1)
    expect(page.locator("#cs-panel .m.me .t")).to_contain_text("Sendt")
    cid = conversation_id(page)
    agent.watch(cid)
    agent.send(cid, "Hei! Hva kan jeg hjelpe med?")
    expect(page.get_by_text("Hei! Hva kan jeg hjelpe med?")).to_be_visible()
    assert bubble_texts(page) == ["Hei fra en annen side", "Hei! Hva kan jeg hjelpe med?"]
    # The visitor token is the host page's (its origin's localStorage), nothing on the chat
    # server's origin, and no cookie anywhere.
    assert page.evaluate("() => Object.keys(localStorage)") == ["chatserver.visitor"]
    assert context.cookies() == []


def test_host_page_css_custom_properties_and_page_language(
    chat: ChatServer, site: StaticSite, new_context: NewContext
) -> None:
    """No data attributes: the page's lang picks the language, the page's CSS the colours."""
    styled = site.page(
        "styled.html",
        chat,
        lang="nb-NO",
        head="<style>#chatserver-widget { --chat-accent: #7a1fa2; --chat-offset: 40px }</style>",
    )
    page = new_context(locale="en-US").new_page()
    load(page, styled)
    launcher = page.get_by_role("button", name="Chat med oss")
    expect(launcher).to_have_css("background-color", "rgb(122, 31, 162)")
    box = launcher.bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    assert viewport["width"] - (box["x"] + box["width"]) == 40  # right side, 40 px in
    assert viewport["height"] - (box["y"] + box["height"]) == 40

    # No lang on the page either: the browser's language decides.
    plain = site.page("plain.html", chat, lang=None)
    norwegian = new_context(locale="nb-NO").new_page()
    load(norwegian, plain)
    expect(norwegian.get_by_role("button", name="Chat med oss")).to_be_visible()

    # A light accent gets dark text: still readable.
    light = site.page("light.html", chat, attrs='data-color="#ffd400"')
    load(page, light)
    launcher = page.get_by_role("button", name="Chat with us")
    expect(launcher).to_have_css("background-color", "rgb(255, 212, 0)")
    expect(launcher).to_have_css("color", "rgb(0, 0, 0)")


def test_the_shipped_example_page_works_cross_origin(
    chat: ChatServer, site: StaticSite, new_context: NewContext
) -> None:
    """The widget's example/ (see its README.md), pointed at this test's chat server."""
    for name in ("index.html", "checkout.html"):
        html = (EXAMPLE / name).read_text()
        assert "http://127.0.0.1:8000/widget.js" in html
        (site.root / f"example-{name}").write_text(
            html.replace("http://127.0.0.1:8000", chat.url).replace(
                'href="checkout.html"', 'href="example-checkout.html"'
            )
        )
    page = new_context().new_page()
    load(page, f"{site.origin}/example-index.html")
    open_chat(page, consent=True)
    message_box(page).fill("typed on the first page")
    page.get_by_role("link", name="Go to the checkout").click()
    page.wait_for_function("() => !!window.ChatWidget")
    expect(panel(page)).to_have_attribute("data-conn", "ready")
    expect(message_box(page)).to_have_value("typed on the first page")
