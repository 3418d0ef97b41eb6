"""What a person sees in the agent console at three viewports: desktop 1440x900, tablet
900x800 and phone 375x667.

One conversation of about 40 items, seeded once through the real server (visitor socket
frames, the REST API): short, long, multi-line visitor messages and one with a long URL,
agent replies, internal notes, attachments from both sides, and the event lines that
assigning, pending, resolving and reopening leave (counted when the server stores them).

At each viewport every ``#messages > li`` is scrolled into view and must be visible, at
least one line tall and 60 px wide, not clipped, and inside the message list; the panes
must not overlap nor stick out of the viewport. On tablet the visitor panel is a drawer;
on phone one pane shows at a time (list, thread, visitor). Screenshots of every step go to
``artifacts_dir() / "console-layout"``. Every wait is on a condition; nothing sleeps.

The regions are found by the ids the console's markup keeps (``#inbox``, ``#thread-head``,
...); where an id is missing the class of the older markup stands in, so that a failure
names what a person sees rather than a missing id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.support import TIMEOUT, ChatServer, StaticSite, artifacts_dir
from tests.browser.test_console import Visitor
from tests.web.test_attachments import PDF, png

NewContext = Callable[..., BrowserContext]

@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    height: int
    touch: bool
    min_messages_height: int


DESKTOP = Viewport("desktop", 1440, 900, False, 200)
TABLET = Viewport("tablet", 900, 800, True, 200)
PHONE = Viewport("phone", 375, 667, True, 150)
VIEWPORTS = [pytest.param(v, id=v.name) for v in (DESKTOP, TABLET, PHONE)]

# The regions a person looks at: the id the markup keeps first, the older class after it.
REGIONS: dict[str, list[str]] = {
    "header": ["#app > header"],
    "inbox": ["#inbox", "#view-inbox > .inbox"],
    "thread-head": ["#thread-head", "#thread .thread-head"],
    "messages": ["#messages"],
    "reply": ["#reply"],
    "visitor": ["#visitor"],
}
PANES: dict[str, list[str]] = {
    "inbox": REGIONS["inbox"],
    "thread": ["#thread"],
    "visitor": ["#visitor"],
}
THREAD_REGIONS = ("thread-head", "messages", "reply")

LONG_URL = (
    "https://tracking.example-logistics.com/track/shipment/48213/details?reference="
    + "a1b2c3d4e5f6g7h8" * 12
    + "&lang=en-GB&utm_source=confirmation-email"
)
LONG_1 = (
    "I ordered the blue rain jacket (size M) and a pair of walking boots on the 2nd. The "
    "confirmation said it would arrive within three working days, but it has now been more "
    "than a week and the tracking page has not changed since Thursday. I have called the "
    "courier twice and they told me to contact you, because only the sender can open an "
    "investigation. I need the jacket for a trip next weekend, so I am getting a bit worried "
    "that it will not make it in time. Could you please find out what is going on?"
)
LONG_2 = (
    "Thank you for checking.\n\nJust so you know, I will be out during the day tomorrow, "
    "from about 9 in the morning until 6 in the evening.\nIf the driver comes while I am "
    "away, they can leave it with my neighbour at number 23 (her name is Maria), or put it "
    "in the green box behind the gate.\n\nPlease do NOT leave it on the doorstep, last time "
    "a parcel got soaked in the rain."
)
LONG_3 = (
    "One last question: the size guide at https://shop.example/help/size-guide/jackets-and-"
    "coats-for-women-and-men-2024-edition?section=rain-jackets says M fits a 96 cm chest, "
    "but the label on my old jacket says 100 cm. Which one is right? I would rather not "
    "have to send it back and wait for another week."
)


# ------------------------------------------------------------------ seeding


def upload(chat: ChatServer, cid: str, auth: str, name: str, data: bytes, mime: str) -> str:
    r = httpx.post(
        f"{chat.url}/api/v1/conversations/{cid}/attachments",
        files={"file": (name, data, mime)},
        headers={"Authorization": auth},
        timeout=TIMEOUT,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@dataclass
class Seeded:
    cid: str
    others: list[str]
    email: str
    password: str
    items: list[dict[str, Any]]  # the thread as the server lists it

    @property
    def kinds(self) -> dict[str, str]:
        """seq -> "visitor", "agent", "note", "event", "system"."""
        out = {}
        for m in self.items:
            role = (m.get("author") or {}).get("role") or "agent"
            kind = m.get("kind") or "text"
            out[str(m["seq"])] = kind if kind in ("note", "event") else role
        return out


@pytest.fixture(scope="module")
def seeded(chat: ChatServer, site: StaticSite) -> Seeded:
    tag = uuid.uuid4().hex[:6]
    password = "pw-" + uuid.uuid4().hex
    agent = chat.api(
        "POST",
        "/agents",
        {
            "email": f"layout-{tag}@example.com",
            "name": f"Layout Agent {tag}",
            "password": password,
            "role": "agent",
        },
    )

    # A few more conversations first (the inbox must have rows to show on phone).
    others = []
    for n, text in enumerate(
        (
            "Do you ship to Norway?",
            "My discount code does not work",
            "Can I change the colour of my order?",
            "Where is my refund?",
            "The zip on my jacket broke after one week",
            "Do you have the boots in size 45?",
        )
    ):
        other = Visitor(chat, origin=site.origin, title=f"Product page {n}")
        try:
            other.say(text)
            others.append(other.cid)
        finally:
            other.close()

    bearer = f"Bearer {chat.token}"
    visitor = Visitor(chat, origin=site.origin, title="Checkout")
    try:
        steps: list[tuple[str, Any]] = [
            ("v", "Hi! My order #48213 still hasn't arrived. It was due last Tuesday."),
            ("patch", {"assignee_id": agent["id"]}),
            ("a", "Hello, I'm Sam from support. Sorry about the wait, let me look that up."),
            ("v", LONG_1),
            ("n", "VIP customer (third order this month). Offer free express shipping."),
            ("a", "Could you paste the tracking link from your confirmation email?"),
            ("v", LONG_URL),
            ("v", "ok"),
            (
                "a",
                "I can see it:\n• left our warehouse on the 3rd\n• reached the depot on the "
                "5th\n• no scan since then",
            ),
            (
                "v",
                "My address is:\nJane Doe\nFlat 4B, 221 Long Street Name Avenue\n"
                "Springfield 12345\nPlease double-check it.",
            ),
            ("v-files", "Here is a photo of the label and my receipt."),
            ("n", "Depot confirms the parcel is stuck in sorting. Ticket DEP-7741."),
            ("a-files", "Here is a prepaid return label, in case you want to send it back:"),
            ("patch", {"status": "pending"}),
            ("v", "Thanks, I'll wait for news."),
            ("a", "I'll get back to you by tomorrow at the latest."),
            ("v", "Any update?"),
            ("a", "The depot found it. It goes out with tomorrow's first delivery."),
            ("v", LONG_2),
            ("n", "Follow up on Friday if there is no delivery scan."),
            ("a", "Would you like a text message when it is out for delivery?"),
            ("v", "Yes please!"),
            ("a", "Done 👍"),
            ("v", "Great, thank you so much"),
            ("patch", {"status": "resolved"}),
            ("patch", {"status": "open"}),
            (
                "v",
                "Sorry, one more thing: the invoice has the wrong VAT number. It should be "
                "GB123456789, not GB987654321.",
            ),
            ("a", "No problem, I'll have billing send you a corrected invoice."),
            ("n", "Billing ticket BIL-2210 opened."),
            ("v", "Can you send it to accounts@jane-doe-consulting.example as well?"),
            ("a", "Yes, both addresses are on the ticket."),
            ("v", LONG_3),
            ("a", "M is right: the label on older jackets measured the jacket, not the chest."),
            ("v", "Perfect."),
            ("a", "Anything else I can help with today?"),
            ("v", "No, that's all"),
            ("a", "You're welcome, have a nice day!"),
            ("v", "bye"),
            ("n", "Closing note: customer happy, no refund needed."),
            ("a", "Bye!"),
        ]
        assert len(steps) == 40
        for what, arg in steps:
            if what == "v":
                visitor.say(arg)
            elif what == "v-files":
                auth = f"Visitor {visitor.token}"
                ids = [
                    upload(chat, visitor.cid, auth, "label-photo.png", png(64, 48, 5), "image/png"),
                    upload(chat, visitor.cid, auth, "receipt-48213.pdf", PDF, "application/pdf"),
                ]
                visitor.say(arg, attachments=ids)
            elif what == "a":
                chat.reply(visitor.cid, arg)
            elif what == "n":
                chat.reply(visitor.cid, arg, kind="note")
            elif what == "a-files":
                label = upload(
                    chat,
                    visitor.cid,
                    bearer,
                    "return-label-with-a-rather-long-file-name-48213.pdf",
                    PDF + b"% return label\n",
                    "application/pdf",
                )
                chat.api(
                    "POST",
                    f"/conversations/{visitor.cid}/messages",
                    {"client_msg_id": str(uuid.uuid4()), "body": arg, "attachments": [label]},
                )
            else:
                chat.api("PATCH", f"/conversations/{visitor.cid}", arg)
        cid = visitor.cid
    finally:
        visitor.close()
    conv = chat.api("GET", f"/conversations/{cid}")
    assert conv["status"] == "open", conv
    items = chat.messages(cid, events=True)
    texts = [m for m in items if m.get("kind") != "event"]
    assert len(texts) == 36, [m.get("body") for m in items]  # the events come on top, if any
    assert sum(len(m.get("attachments") or []) for m in items) == 3
    return Seeded(cid, others, agent["email"], password, items)


# ------------------------------------------------------------------ the browser side


def open_console(new_context: NewContext, vp: Viewport, seeded: Seeded, chat: ChatServer) -> Page:
    context = new_context(
        viewport={"width": vp.width, "height": vp.height},
        device_scale_factor=1,
        has_touch=vp.touch,
        is_mobile=vp is PHONE,
    )
    page = context.new_page()
    page.goto(chat.url + "/console")
    page.get_by_label("Email", exact=True).fill(seeded.email)
    page.get_by_label("Password", exact=True).fill(seeded.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
    expect(row(page, seeded.cid)).to_have_count(1)
    settle(page, "!document.querySelector('#conversations[aria-busy=\"true\"]')")
    return page


def row(page: Page, cid: str) -> Any:
    return page.locator(f'#conversations button[data-id="{cid}"]')


def open_thread(page: Page, vp: Viewport, seeded: Seeded) -> None:
    """Tap (or click) the conversation's row; wait until every item of it is in the list."""
    if vp.touch:
        row(page, seeded.cid).tap()  # scrolls it into view first
    else:
        row(page, seeded.cid).click()
    want = len(seeded.items)
    try:
        page.wait_for_function(
            "n => document.querySelectorAll('#messages > li').length >= n",
            arg=want,
            timeout=TIMEOUT * 1000,
        )
    except Exception as e:
        got = page.locator("#messages > li").count()
        raise AssertionError(f"the thread shows {got} of its {want} items") from e
    settle(page)
    seqs = page.locator("#messages > li").evaluate_all("ls => ls.map(l => l.dataset.seq)")
    assert sorted(seqs, key=int) == [str(m["seq"]) for m in seeded.items], seqs


def shot(page: Page, name: str) -> Path:
    folder = artifacts_dir("console-layout")
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# No finite CSS animation or transition is running (a pane sliding in, a drawer opening).
SETTLED = (
    "document.getAnimations().every(a => a.playState !== 'running' || !a.effect"
    " || a.effect.getComputedTiming().endTime === Infinity)"
)


def settle(page: Page, condition: str = "true", arg: Any = None) -> bool:
    """Wait until ``condition`` (a JS expression of ``arg``) holds and nothing animates.
    Bounded by TIMEOUT; answers whether it came true: the caller then asserts what shows."""
    try:
        page.wait_for_function(
            f"(arg) => ({condition}) && {SETTLED}", arg=arg, timeout=TIMEOUT * 1000
        )
        return True
    except PlaywrightTimeoutError:
        return False


# Measuring in the page. `find` takes a list of selectors and answers the first that exists.
JS_HELPERS = """
const find = (sels) => { for (const s of sels) { const e = document.querySelector(s); if (e) return e; } return null; };
const box = (e) => { const r = e.getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width, h: r.height, right: r.right, bottom: r.bottom}; };
const shown = (e) => {
  if (!e) return false;
  const opts = {checkOpacity: true, checkVisibilityCSS: true, opacityProperty: true, visibilityProperty: true};
  if (!e.checkVisibility(opts)) return false;
  const r = e.getBoundingClientRect();
  const w = Math.min(r.right, innerWidth) - Math.max(r.left, 0);
  const h = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
  return r.width > 0 && r.height > 0 && w > 0 && h > 0 && w * h > 1;
};
"""

REGIONS_JS = (
    "(regions) => {"
    + JS_HELPERS
    + """
  const out = {};
  for (const [name, sels] of Object.entries(regions)) {
    const e = find(sels);
    out[name] = {found: !!e, shown: shown(e), box: e ? box(e) : null};
  }
  out.__page = {scrollWidth: document.documentElement.scrollWidth, innerWidth, innerHeight};
  return out;
}"""
)

ITEM_JS = (
    "([li, snippet]) => {"
    + JS_HELPERS
    + """
  const list = document.querySelector('#messages');
  // Scroll the item into view inside #messages (its top at the top when it is taller).
  const lr = list.getBoundingClientRect(), ir = li.getBoundingClientRect();
  const room = list.clientHeight;
  list.scrollTop += (ir.top - lr.top) - Math.max(0, (room - ir.height) / 2);
  const r1 = li.getBoundingClientRect();
  if (r1.bottom <= 0 || r1.top >= innerHeight) li.scrollIntoView({block: 'nearest'});

  // The element that holds the message's text: the deepest one with its first line, or
  // its nearest block-level ancestor; else the item itself.
  let text = null;
  if (snippet) {
    for (const e of li.querySelectorAll('*')) if (e.textContent.includes(snippet)) text = e;
  }
  while (text && text !== li && getComputedStyle(text).display.startsWith('inline')) text = text.parentElement;
  if (!text) text = li.querySelector('.text') || li;

  const styles = [];
  let opacity = 1;
  for (let e = li; e && e !== document.documentElement; e = e.parentElement) {
    const s = getComputedStyle(e);
    opacity *= Number(s.opacity);
    if (e === li) styles.push(s.display, s.visibility);
  }
  const ts = getComputedStyle(text);
  let lh = parseFloat(ts.lineHeight);
  if (!Number.isFinite(lh)) lh = parseFloat(ts.fontSize) * 1.2;
  const dims = (e) => ({sh: e.scrollHeight, ch: e.clientHeight, sw: e.scrollWidth, cw: e.clientWidth});
  const lb = box(li), mb = box(list);
  return {
    cls: li.className, display: styles[0], visibility: styles[1], opacity,
    visible: shown(li), box: lb, list: mb, lineHeight: lh,
    li: dims(li), text: dims(text), textIs: text === li ? 'the item' : text.tagName.toLowerCase() + (text.className ? '.' + text.className : ''),
    inView: Math.min(lb.bottom, mb.bottom, innerHeight) - Math.max(lb.y, mb.y, 0) > 0,
    images: [...li.querySelectorAll('img')].length,
  };
}"""
)


def regions(page: Page, names: dict[str, list[str]]) -> dict[str, Any]:
    return page.evaluate(REGIONS_JS, names)  # type: ignore[no-any-return]


def area(a: dict[str, float], b: dict[str, float]) -> float:
    w = min(a["right"], b["right"]) - max(a["x"], b["x"])
    h = min(a["bottom"], b["bottom"]) - max(a["y"], b["y"])
    return max(0.0, w) * max(0.0, h)


def layout_problems(page: Page, vp: Viewport, *, required: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with the shown regions: missing, overlapping, outside the viewport."""
    got = regions(page, REGIONS)
    info = got.pop("__page")
    problems = []
    if info["innerWidth"] != vp.width:
        problems.append(f"the layout viewport is {info['innerWidth']} px wide, not {vp.width}")
    if info["scrollWidth"] > vp.width:
        problems.append(
            f"the page scrolls sideways: scrollWidth {info['scrollWidth']} > {vp.width}"
        )
    for name in required:
        if not got[name]["shown"]:
            problems.append(f"{name} is not shown (box {fmt(got[name]['box'])})")
    shown = [n for n, r in got.items() if r["shown"]]
    for i, a in enumerate(shown):
        ra = got[a]["box"]
        if ra["x"] < -1 or ra["right"] > vp.width + 1:
            problems.append(f"{a} sticks out of the viewport sideways: {fmt(ra)}")
        if ra["y"] < -1 or ra["bottom"] > vp.height + 1:
            problems.append(f"{a} is not inside the viewport's height {vp.height}: {fmt(ra)}")
        for b in shown[i + 1 :]:
            overlap = area(ra, got[b]["box"])
            if overlap > 1:
                problems.append(
                    f"{a} {fmt(ra)} and {b} {fmt(got[b]['box'])} overlap by {overlap:.0f} px²"
                )
    if got["messages"]["shown"] and got["messages"]["box"]["h"] < vp.min_messages_height:
        problems.append(
            f"#messages is {got['messages']['box']['h']:.0f} px tall, "
            f"under {vp.min_messages_height} px"
        )
    return problems


def panes_shown(page: Page) -> list[str]:
    got = regions(page, PANES)
    got.pop("__page")
    return [name for name, r in got.items() if r["shown"]]


def fmt(b: dict[str, float] | None) -> str:
    if not b:
        return "(absent)"
    return f"[x {b['x']:.0f}..{b['right']:.0f}, y {b['y']:.0f}..{b['bottom']:.0f}]"


def first_line(body: str) -> str:
    for line in body.splitlines():
        if line.strip():
            return line.strip()[:24]
    return ""


def item_problems(page: Page, seeded: Seeded) -> list[str]:
    """Scroll to each item in turn; what is wrong with how it shows."""
    bodies = {str(m["seq"]): m.get("body") or "" for m in seeded.items}
    kinds = seeded.kinds
    problems = []
    items = page.locator("#messages > li")
    for i in range(items.count()):
        li = items.nth(i)
        seq = li.get_attribute("data-seq") or "?"
        kind = kinds.get(seq, "?")
        m = li.evaluate(
            "(li, snippet) => (" + ITEM_JS + ")([li, snippet])", first_line(bodies.get(seq, ""))
        )
        if m["images"] and m["visible"]:
            # Lazy previews load once in view: measure again when they have.
            try:
                page.wait_for_function(
                    "li => [...li.querySelectorAll('img')].every(i => i.complete)",
                    arg=li.element_handle(),
                    timeout=TIMEOUT * 1000,
                )
            except Exception:
                problems.append(f"item seq {seq}: its image preview did not load")
            m = li.evaluate(
                "(li, snippet) => (" + ITEM_JS + ")([li, snippet])",
                first_line(bodies.get(seq, "")),
            )
        who = f"item seq {seq} ({kind}, li.{m['cls'].replace(' ', '.')})"
        bad = []
        if not li.is_visible() or not m["visible"]:
            bad.append("not visible")
        if m["display"] == "none" or m["visibility"] != "visible" or m["opacity"] <= 0:
            bad.append(
                f"display {m['display']}, visibility {m['visibility']}, opacity {m['opacity']}"
            )
        if bad:  # not shown at all: its box says nothing more
            problems.append(f"{who}: " + "; ".join(bad))
            continue
        b, lb = m["box"], m["list"]
        need = max(18.0, m["lineHeight"])
        if b["h"] + 0.5 < need:
            bad.append(f"{b['h']:.1f} px tall, under one line ({need:.1f} px)")
        if kind != "event" and b["w"] + 0.5 < 60:
            bad.append(f"{b['w']:.1f} px wide, under 60 px")
        for label, d in (("the item", m["li"]), (m["textIs"], m["text"])):
            if d["sh"] > d["ch"] + 1 or d["sw"] > d["cw"] + 1:
                bad.append(
                    f"{label} is clipped (scroll {d['sw']}x{d['sh']} > client {d['cw']}x{d['ch']})"
                )
        if b["x"] < lb["x"] - 1 or b["right"] > lb["right"] + 1:
            bad.append(f"sticks out of #messages sideways: {fmt(b)} vs {fmt(lb)}")
        if m["visible"] and not m["inView"]:
            bad.append(f"could not be scrolled into view inside #messages: {fmt(b)} vs {fmt(lb)}")
        if bad:
            problems.append(f"{who}: " + "; ".join(bad))
    return problems


def summary(problems: list[str], limit: int = 25) -> str:
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} problem(s):\n" + "\n".join(problems[:limit]) + more


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("vp", VIEWPORTS)
def test_every_thread_item_is_readable(
    vp: Viewport, chat: ChatServer, seeded: Seeded, new_context: NewContext
) -> None:
    """Each item of a thread longer than its pane (visitor messages, replies, notes, files,
    events), once scrolled into view, is visible, at least one line tall and 60 px wide,
    shows all its text (nothing clipped) and lies within the message list."""
    page = open_console(new_context, vp, seeded, chat)
    open_thread(page, vp, seeded)
    shot(page, f"{vp.name}-thread-newest")
    kinds = set(seeded.kinds.values())
    assert {"visitor", "agent", "note"} <= kinds, kinds
    problems = item_problems(page, seeded)
    page.locator("#messages > li").first.evaluate("li => li.scrollIntoView({block: 'start'})")
    shot(page, f"{vp.name}-thread-oldest")
    assert not problems, f"{vp.name} {vp.width}x{vp.height}: " + summary(problems)


@pytest.mark.parametrize("vp", VIEWPORTS)
def test_panes_fit_the_viewport_without_overlapping(
    vp: Viewport, chat: ChatServer, seeded: Seeded, new_context: NewContext
) -> None:
    """With a conversation open: the top bar, thread head, message list, composer and the
    inbox and visitor panel where shown do not overlap, stay inside the viewport (no
    sideways scroll), and the message list is tall enough to read. Desktop shows the three
    panes side by side without the one-pane buttons; tablet keeps the visitor panel
    closed behind #show-visitor; phone shows the thread pane alone."""
    page = open_console(new_context, vp, seeded, chat)
    open_thread(page, vp, seeded)
    expect(page.locator("#reply")).to_be_visible()
    shot(page, f"{vp.name}-thread")
    problems = layout_problems(page, vp, required=THREAD_REGIONS)
    panes = panes_shown(page)
    buttons = regions(page, {"show-visitor": ["#show-visitor"], "back-to-list": ["#back-to-list"]})
    if vp is DESKTOP:
        if panes != ["inbox", "thread", "visitor"]:
            problems.append(f"desktop shows the panes {panes}, not inbox, thread and visitor")
        got = regions(page, PANES)
        xs = [got[n]["box"] for n in ("inbox", "thread", "visitor") if got[n]["box"]]
        if len(xs) == 3 and not (
            xs[0]["right"] <= xs[1]["x"] + 1 and xs[1]["right"] <= xs[2]["x"] + 1
        ):
            problems.append("desktop panes are not side by side: " + ", ".join(map(fmt, xs)))
        for name in ("show-visitor", "back-to-list"):
            if buttons[name]["shown"]:
                problems.append(f"#{name} is shown on desktop")
    elif vp is TABLET:
        if "thread" not in panes or "visitor" in panes:
            problems.append(f"tablet shows the panes {panes}: want the thread, visitor closed")
        if not buttons["show-visitor"]["shown"]:
            problems.append("#show-visitor is not shown on tablet")
    else:
        if panes != ["thread"]:
            problems.append(f"phone shows the panes {panes}, not the thread alone")
        if not buttons["show-visitor"]["shown"]:
            problems.append("#show-visitor is not shown on phone")
        if not buttons["back-to-list"]["shown"]:
            problems.append("#back-to-list is not shown on phone")
    assert not problems, f"{vp.name} {vp.width}x{vp.height}: " + summary(problems)


def test_tablet_visitor_panel_opens_as_a_drawer(
    chat: ChatServer, seeded: Seeded, new_context: NewContext
) -> None:
    """On tablet #show-visitor opens the visitor details as a drawer fully inside the
    viewport, showing who the visitor is; #close-visitor closes it again."""
    vp = TABLET
    page = open_console(new_context, vp, seeded, chat)
    open_thread(page, vp, seeded)
    visitor = page.locator("#visitor")
    shot(page, "tablet-thread-drawer-closed")
    assert "visitor" not in panes_shown(page), "the visitor panel shows before it is asked for"
    button = regions(page, {"b": ["#show-visitor"]})["b"]
    assert button["shown"], f"#show-visitor is not shown on tablet: {fmt(button['box'])}"
    page.locator("#show-visitor").tap()
    expect(visitor).to_be_visible()
    expect(visitor).to_contain_text("Checkout")  # the visitor's page title
    settle(page, "document.querySelector('#visitor').checkVisibility()")
    shot(page, "tablet-drawer")
    got = regions(page, {"visitor": ["#visitor"]})
    b = got["visitor"]["box"]
    assert got["visitor"]["shown"], f"the drawer is not shown: {fmt(b)}"
    assert b["x"] >= -1 and b["y"] >= -1, f"the drawer starts outside the viewport: {fmt(b)}"
    assert b["right"] <= vp.width + 1 and b["bottom"] <= vp.height + 1, (
        f"the drawer is not fully inside the {vp.width}x{vp.height} viewport: {fmt(b)}"
    )
    assert b["w"] >= 200, f"the drawer is {b['w']:.0f} px wide"
    button = regions(page, {"b": ["#close-visitor"]})["b"]
    assert button["shown"], f"#close-visitor is not shown in the drawer: {fmt(button['box'])}"
    page.locator("#close-visitor").tap()
    settle(page)
    shot(page, "tablet-drawer-closed-again")
    assert "visitor" not in panes_shown(page)
    problems = layout_problems(page, vp, required=THREAD_REGIONS)
    assert not problems, "after closing the drawer: " + summary(problems)


def full_rows(page: Page) -> int:
    """How many inbox rows are wholly on screen (inside the viewport and every scroller)."""
    return int(
        page.evaluate(
            """() => {
                let n = 0;
                for (const b of document.querySelectorAll('#conversations button[data-id]')) {
                    if (!b.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
                    const r = b.getBoundingClientRect();
                    let top = 0, bottom = innerHeight, left = 0, right = innerWidth;
                    for (let e = b.parentElement; e && e !== document.documentElement; e = e.parentElement) {
                        const s = getComputedStyle(e);
                        if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
                            const c = e.getBoundingClientRect();
                            top = Math.max(top, c.top); bottom = Math.min(bottom, c.bottom);
                            left = Math.max(left, c.left); right = Math.min(right, c.right);
                        }
                    }
                    if (r.height > 0 && r.top >= top - 1 && r.bottom <= bottom + 1
                        && r.left >= left - 1 && r.right <= right + 1) n++;
                }
                return n;
            }"""
        )
    )


def test_phone_shows_one_pane_at_a_time(
    chat: ChatServer, seeded: Seeded, new_context: NewContext
) -> None:
    """On phone the list fills the screen with at least four whole rows; tapping a row opens
    the thread alone; #show-visitor shows the visitor details alone; #close-visitor goes
    back to the thread and #back-to-list to the list. No step overlaps or scrolls sideways."""
    vp = PHONE
    page = open_console(new_context, vp, seeded, chat)
    assert len(seeded.others) >= 4

    def step(name: str, pane: str, required: tuple[str, ...], rows: int = 0) -> None:
        settle(page, "!!document.querySelector(arg)?.checkVisibility()", ", ".join(PANES[pane]))
        shot(page, f"phone-{name}")
        problems = layout_problems(page, vp, required=required)
        panes = panes_shown(page)
        if panes != [pane]:
            problems.insert(0, f"shows the panes {panes}, not {pane} alone")
        if rows and full_rows(page) < rows:
            problems.append(
                f"only {full_rows(page)} whole conversation row(s) on screen, want {rows}"
            )
        assert not problems, f"phone, {name}: " + summary(problems)

    expect(page.locator("#conversations button[data-id]").first).to_be_visible()
    step("list", "inbox", ("inbox",), rows=4)

    open_thread(page, vp, seeded)
    step("thread", "thread", THREAD_REGIONS)

    for button in ("#show-visitor", "#back-to-list"):
        got = regions(page, {"b": [button]})["b"]
        assert got["shown"], f"phone, thread: {button} is not shown: {fmt(got['box'])}"
    page.locator("#show-visitor").tap()
    step("visitor", "visitor", ("visitor",))
    expect(page.locator("#visitor")).to_contain_text("Checkout")

    got = regions(page, {"b": ["#close-visitor"]})["b"]
    assert got["shown"], f"phone, visitor: #close-visitor is not shown: {fmt(got['box'])}"
    page.locator("#close-visitor").tap()
    step("thread-again", "thread", THREAD_REGIONS)

    page.locator("#back-to-list").tap()
    step("back-to-list", "inbox", ("inbox",))
    expect(row(page, seeded.cid)).to_be_visible()
