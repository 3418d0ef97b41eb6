"""The agent console's string catalogues (chatserver/web/static/console/static/i18n/{en,nb,nn}.js), no
browser: node loads the three ES modules and this test checks that

* the three have the same keys, every value is a non-empty string, each value names the
  same ``{placeholders}`` as English, and plurals come in ``.one`` / ``.other`` pairs;
* nb and nn are real translations (literal objects, not a copy of English);
* every key the markup names (``data-i18n``, ``-placeholder``, ``-title``, ``-aria``) and
  every literal key in ``t("…")`` / ``tn("…")`` in the console's scripts is in en.js
  (``tn`` keys as ``key.one`` and ``key.other``);
* the keys the scripts build from a prefix (``t("status." + s)``) exist for every value
  the server sends (error codes, field reasons, timeline events: read from its sources);
* no script holds a likely hard-coded English UI string (``el("p", null, "Some text")``,
  ``.textContent = "Text"``, ``button("Save", …)`` …).

Without node the test skips, except under CI (the ``CI`` environment variable), where it
fails.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import chatserver.errors

ROOT = Path(__file__).resolve().parents[1]
CONSOLE = ROOT / "chatserver" / "web" / "static" / "console"
STATIC = CONSOLE / "static"
I18N = STATIC / "i18n"
LANGS = ("en", "nb", "nn")
PLACEHOLDER = re.compile(r"\{(\w+)\}")

# Keys built at run time from a prefix, with every value they are built from. A new
# prefix in the scripts fails the test until it is listed here.
DYNAMIC: dict[str, set[str]] = {
    "status.": {"open", "pending", "resolved"},
    "role.": {"agent", "admin", "compliance"},
    "day.": {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"},
    "view.": {"all", "mine", "unassigned"},
    "prefs.notify.": {"new_conversation", "new_message_mine", "assigned_to_me"},
    # The fields the console's forms and the server's refusals name.
    "field.": {
        "name",
        "email",
        "phone",
        "role",
        "password",
        "body",
        "shortcut",
        "origin",
        "url",
        "version",
        "tags",
        "status",
        "assignee_id",
        "time_zone",
        "new",
        "current",
        "description",
        "events",
        "active",
    },
    "kind.": {"human", "bot"},
    "origins.source.": {"admin", "settings"},
    "device.": {"desktop", "mobile", "tablet", "bot", "unknown"},
    "webhooks.state.": {"pending", "delivered", "failed"},
    # Filled in from the server's sources below (error codes, reasons, timeline events).
    "error.": set(),
    "error.field.": set(),
    "event.": set(),
}

# Text that may stay as it is in a script: symbols, and words that are not English.
ALLOWED_TEXT = {"×", "—", "<5", "·", "…"}


def _node() -> str:
    node = shutil.which("node")
    if not node:
        if os.environ.get("CI"):
            pytest.fail("node is needed to load the console's catalogues (ES modules)")
        pytest.skip("node is not installed: the console's catalogues are ES modules")
    return node


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The three catalogues as node reads them (copied as .mjs: no package.json needed)."""
    node = _node()
    tmp = tmp_path_factory.mktemp("console-catalogues")
    paths = {}
    for lang in LANGS:
        source = (I18N / f"{lang}.js").read_text(encoding="utf-8")
        target = tmp / f"{lang}.mjs"
        # A catalogue may import another (a placeholder spreading en): keep that working.
        target.write_text(re.sub(r'from "\./(\w+)\.js"', r'from "./\1.mjs"', source), "utf-8")
        paths[lang] = str(target)
    runner = tmp / "dump.mjs"
    runner.write_text(
        'import { pathToFileURL } from "node:url";\n'
        "const out = {};\n"
        "for (const [lang, path] of Object.entries(JSON.parse(process.argv[2]))) {\n"
        "  const m = await import(pathToFileURL(path).href);\n"
        "  out[lang] = m.default;\n"
        "}\n"
        "process.stdout.write(JSON.stringify(out));\n",
        "utf-8",
    )
    done = subprocess.run(
        [node, str(runner), json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"node could not load the catalogues:\n{done.stderr}"
    loaded: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return loaded


def _scripts() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*.js") if I18N not in p.parents)


def _code(path: Path) -> str:
    """A script without its comments (kept as blank lines, so line numbers stay)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$", "", text)


def _where(path: Path, text: str, index: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, index) + 1}"


# ------------------------------------------------------------------ the catalogues


def test_every_catalogue_has_every_key_with_its_placeholders(
    catalogues: dict[str, dict[str, Any]],
) -> None:
    en = catalogues["en"]
    assert len(en) > 100, "en.js looks empty"
    problems = []
    for lang in LANGS:
        cat = catalogues[lang]
        missing = sorted(set(en) - set(cat))
        extra = sorted(set(cat) - set(en))
        if missing:
            problems.append(f"{lang}.js lacks {len(missing)} key(s): {', '.join(missing)}")
        if extra:
            problems.append(f"{lang}.js has key(s) en.js does not: {', '.join(extra)}")
        for key, value in cat.items():
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{lang}.js {key!r} is empty or not a string: {value!r}")
                continue
            if key in en and isinstance(en[key], str):
                want = set(PLACEHOLDER.findall(en[key]))
                got = set(PLACEHOLDER.findall(value))
                if got != want:
                    problems.append(
                        f"{lang}.js {key!r} has the placeholders {sorted(got)}, en has "
                        f"{sorted(want)}: {value!r}"
                    )
        for key in cat:
            if key.endswith(".one") and key[: -len(".one")] + ".other" not in cat:
                problems.append(f"{lang}.js has {key!r} without its .other form")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", ["nb", "nn"])
def test_norwegian_catalogues_are_translations_not_copies(
    lang: str, catalogues: dict[str, dict[str, Any]]
) -> None:
    source = (I18N / f"{lang}.js").read_text(encoding="utf-8")
    assert "import" not in source and "..." not in source, (
        f"{lang}.js should be a literal `export default {{ ... }}`, not built from en.js"
    )
    en, cat = catalogues["en"], catalogues[lang]
    same = [k for k in en if cat.get(k) == en[k]]
    assert len(same) < len(en) * 0.15, f"{lang}.js repeats English in {len(same)} keys: {same}"


def test_nynorsk_is_not_bokmal(catalogues: dict[str, dict[str, Any]]) -> None:
    """Words that are Bokmål only (or the Bokmål form) do not appear in nn.js."""
    bokmal = re.compile(
        r"\b(ikke|jeg|hva|hvem|hvis|hvordan|noen|noe|mye|fra|bare|ble|meldinger|"
        r"samtaler|ennå|tilgjengelig|besøkende|navn|tegn|"
        r"virker|gjelder|opptatt|lenken|innhold|inneholder)\b",
        re.IGNORECASE,
    )
    hits = [f"{k}: {v!r}" for k, v in catalogues["nn"].items() if bokmal.search(v)]
    assert not hits, "Bokmål in nn.js:\n" + "\n".join(hits)


# ------------------------------------------------------------------ keys the console uses


def test_markup_keys_are_in_the_catalogue(catalogues: dict[str, dict[str, Any]]) -> None:
    en = catalogues["en"]
    html = (CONSOLE / "index.html").read_text(encoding="utf-8")
    keys = re.findall(r'\bdata-i18n(?:-placeholder|-title|-aria)?="([^"]*)"', html)
    assert len(keys) > 20, "index.html names hardly any strings: did the attributes change?"
    missing = sorted({k for k in keys if k not in en})
    assert not missing, f"index.html names keys en.js lacks: {missing}"


def test_script_keys_are_in_the_catalogue(catalogues: dict[str, dict[str, Any]]) -> None:
    en = catalogues["en"]
    literal = re.compile(r"""(?<![\w$])(t|tn)\(\s*(["'])([\w.\-]+)\2\s*[,)]""")
    attribute = re.compile(r"""dataset\.i18n\w*\s*=\s*(["'])([\w.\-]+)\1""")
    problems = []
    used = 0
    for path in _scripts():
        text = _code(path)
        for m in literal.finditer(text):
            used += 1
            fn, key = m.group(1), m.group(3)
            wanted = [key + ".one", key + ".other"] if fn == "tn" else [key]
            for k in wanted:
                if k not in en:
                    problems.append(f"{_where(path, text, m.start())}: {fn}({key!r}) -> {k!r}")
        for m in attribute.finditer(text):
            if m.group(2) not in en:
                problems.append(f"{_where(path, text, m.start())}: {m.group(0)}")
    assert used > 100, f"only {used} t() calls found: did the helpers change their names?"
    assert not problems, "keys used in the scripts but missing from en.js:\n" + "\n".join(problems)


def _server_values() -> dict[str, set[str]]:
    """The values the server sends that the console turns into keys."""
    codes = {"offline"}  # the console's own code for a server it cannot reach
    base = chatserver.errors.ChatError

    def walk(cls: type[chatserver.errors.ChatError]) -> None:
        codes.add(cls.code)
        for sub in cls.__subclasses__():
            walk(sub)

    # Every error class, those in chatserver.errors and any subclass defined elsewhere.
    walk(base)
    for _, obj in inspect.getmembers(chatserver.errors, inspect.isclass):
        if issubclass(obj, base):
            walk(obj)
    events: set[str] = set()
    timeline = (ROOT / "chatserver" / "timeline.py").read_text(encoding="utf-8")
    for m in re.finditer(r'\{"type": "(\w+)"([^}]*)\}', timeline):
        events.add(m.group(1))
        if '"by"' in m.group(2):
            events.add(m.group(1) + "_by")
    assert {"assigned", "assigned_by", "rated"} <= events, f"timeline.py changed: {events}"
    return {
        "error.": codes,
        "error.field.": set(chatserver.errors.REASONS) | {"taken"},
        "event.": events | {"someone"},
    }


def test_keys_built_from_a_prefix_exist_for_every_value(
    catalogues: dict[str, dict[str, Any]],
) -> None:
    en = catalogues["en"]
    values = {k: set(v) for k, v in DYNAMIC.items()}
    for prefix, extra in _server_values().items():
        values[prefix] |= extra
    # "status." + s, "event." + e.type, label("kind.", a.kind): a string ending in "."
    # that is concatenated or handed to a helper as a key prefix.
    prefix_re = re.compile(
        r"""(["'])([a-z][a-z_]*(?:\.[a-z_]+)*\.)\1\s*(?:\+|,)""",
    )
    problems = []
    for path in _scripts():
        text = _code(path)
        for m in prefix_re.finditer(text):
            prefix = m.group(2)
            if not any(k.startswith(prefix) for k in en) and prefix not in values:
                continue  # not a key prefix ("." + ext and the like)
            if prefix not in values:
                problems.append(
                    f"{_where(path, text, m.start())}: keys built from {prefix!r}: list the "
                    "values in DYNAMIC in this test"
                )
    for prefix, names in sorted(values.items()):
        for name in sorted(names):
            if prefix + name not in en:
                problems.append(f"en.js lacks {prefix + name!r}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ hard-coded English

_Q = r"""(["'`])((?:(?!\1)[^\\]|\\.)*)\1"""
HARDCODED = [
    # el("p", "muted", "Some text")
    re.compile(r"""\bel\(\s*["'][\w-]+["']\s*,\s*[^,()]*,\s*""" + _Q),
    # x.textContent = "Text", .title =, .placeholder =, .alt =
    re.compile(r"""\.(?:textContent|innerText|title|placeholder|alt)\s*=\s*""" + _Q),
    # setAttribute("aria-label", "Text")
    re.compile(r"""setAttribute\(\s*["'](?:aria-label|title|placeholder|alt)["']\s*,\s*""" + _Q),
    # button("Save", …), smallButton(h, "Refresh", "Refresh the log", …)
    re.compile(r"""\bbutton\(\s*""" + _Q),
    re.compile(r"""\bsmallButton\(\s*\w+\s*,\s*""" + _Q),
    re.compile(r"""\bsmallButton\(\s*\w+\s*,\s*[^,]+,\s*""" + _Q),
    # form fields: {label: "Email"}, table(["Name", …])
    re.compile(r"""\blabel:\s*""" + _Q),
    re.compile(r"""\btable\(\s*\[\s*""" + _Q),
    # confirm("Delete it?"), new Notification("New message")
    re.compile(r"""\b(?:confirm|alert|prompt)\(\s*""" + _Q),
    re.compile(r"""\bnew Notification\(\s*""" + _Q),
    # node.append("Text"), replaceChildren("Text")
    re.compile(r"""\.(?:append|replaceChildren|prepend|after|before)\(\s*""" + _Q),
]
# English words, as a person reads them: a capitalised word, or two words in a row.
WORDY = re.compile(r"[A-Z][a-z]{2,}|[a-z]{2,}[ ,:]+[a-z]{2,}")


def hardcoded_strings(text: str) -> list[tuple[int, str]]:
    found = []
    for pattern in HARDCODED:
        for m in pattern.finditer(text):
            raw = m.group(2)
            shown = re.sub(r"\$\{[^}]*\}", " ", raw).strip()
            if shown in ALLOWED_TEXT or not WORDY.search(shown):
                continue
            found.append((m.start(), raw))
    return found


def test_the_heuristic_finds_hard_coded_english() -> None:
    bad = """
        box.append(el("p", "muted", "No webhooks yet."));
        title.textContent = "Conversations per day";
        b.setAttribute("aria-label", "Delete the webhook");
        button("Save name", () => {});
        smallButton(h, "Refresh", "Refresh the delivery log", go);
        form("x", [{ name: "email", label: "Email" }]);
        table(["Name", "Email"], rows);
        confirm("Revoke the token of " + name + "?");
        p.append(`Counts under ${n} are hidden`);
    """
    assert len(hardcoded_strings(bad)) == 10, hardcoded_strings(bad)
    good = """
        el("span", "muted", t("inbox.none")); el("p", null, "×"); el("td", null, "<5");
        x.textContent = ""; el("span", null, " · "); fd.append("file", blob);
        button(t("common.save"), go); el("code", null, fresh); el("span", "x", "—");
    """
    assert hardcoded_strings(good) == []


def test_no_script_holds_hard_coded_english() -> None:
    problems = []
    for path in _scripts():
        text = _code(path)
        for index, raw in hardcoded_strings(text):
            problems.append(f"{_where(path, text, index)}: {raw!r}")
    assert not problems, (
        "English text in the console's scripts: give it a key in i18n/en.js (and nb.js, "
        "nn.js) and use t():\n" + "\n".join(problems)
    )
