"""The widget's string catalogues (chatserver/web/static/widget/widget.js, ``STRINGS``) all have the same keys:
a string missing from one language would show as "undefined" in the widget, and an extra
one is a typo or a leftover. Node evaluates the catalogue literal itself (no regex over
JavaScript), then compares every catalogue with English."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

WIDGET = Path(__file__).resolve().parents[1] / "chatserver" / "web" / "static" / "widget" / "widget.js"
LANGUAGES = ("en", "nb", "nn")
# The literal runs from `var STRINGS = {` to the first `};` at its own indentation.
LITERAL = re.compile(
    r"^(?P<indent>[ \t]*)var STRINGS = (?P<body>\{.*?^(?P=indent)\});", re.S | re.M
)
# Evaluated in an empty context: the literal may only be data, no access to anything.
NODE = """
const vm = require("vm");
let src = "";
process.stdin.on("data", (d) => (src += d));
process.stdin.on("end", () => {
  const strings = vm.runInNewContext("(" + src + ")", Object.create(null), { timeout: 1000 });
  process.stdout.write(JSON.stringify(strings));
});
"""


def catalogues() -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        message = "node is needed to read the widget's catalogues (apt-get install nodejs)"
        if os.environ.get("CI"):  # CI installs nodejs (see .ci/run): there it is a failure
            pytest.fail(message)
        pytest.skip(message)
    match = LITERAL.search(WIDGET.read_text(encoding="utf-8"))
    assert match, "no `var STRINGS = {...};` in chatserver/web/static/widget/widget.js"
    done = subprocess.run(
        [node, "-e", NODE],
        input=match["body"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return result


def test_every_catalogue_has_every_key_and_no_other() -> None:
    strings = catalogues()
    assert sorted(strings) == sorted(LANGUAGES), "languages: expected en, nb and nn"
    every = set().union(*(set(c) for c in strings.values()))
    problems = []
    for lang in LANGUAGES:
        missing = sorted(every - set(strings[lang]))
        extra = sorted(set(strings[lang]) - set(strings["en"]))
        if missing:
            problems.append(f"{lang} lacks {', '.join(missing)}")
        if extra:
            problems.append(f"{lang} has keys English does not: {', '.join(extra)}")
    assert not problems, "; ".join(problems)


def test_every_entry_is_filled_and_keeps_its_placeholders() -> None:
    """Same shape in every language: a non-empty string (or list of as many), and the
    same ``{name}`` placeholders, so fmt() fills each one."""
    strings = catalogues()
    english = strings["en"]
    for lang in LANGUAGES:
        for key, value in strings[lang].items():
            base = english.get(key)
            if isinstance(base, list):
                assert isinstance(value, list) and len(value) == len(base), (lang, key)
                assert all(isinstance(v, str) and v.strip() for v in value), (lang, key)
                continue
            assert isinstance(value, str) and value.strip(), (lang, key)
            if base is not None:
                holes = sorted(re.findall(r"\{\w+\}", value))
                assert holes == sorted(re.findall(r"\{\w+\}", base)), (lang, key, value)


def test_nynorsk_is_its_own_language() -> None:
    """nn is a translation, not a copy of Bokmål: most entries differ, and words that
    only Bokmål writes are absent."""
    strings = catalogues()
    nb, nn = strings["nb"], strings["nn"]
    differ = [k for k in nn if nn[k] != nb[k]]
    assert len(differ) >= len(nn) // 2, f"only {len(differ)} of {len(nn)} differ from nb"
    text = " ".join(v if isinstance(v, str) else " ".join(v) for v in nn.values())
    for bokmal in ("ikke", "hvordan", "hva", "en melding", "nå.", "eksempel,", "dårlig", "svarer"):
        assert bokmal not in text.lower(), f"Bokmål in the Nynorsk catalogue: {bokmal!r}"
