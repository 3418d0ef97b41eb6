"""The docs stay true: every setting, command and endpoint they name exists, and the other way.

Three lists are compared with what the documentation says:

- the settings (``chatserver.config.SETTINGS``) with ``docs/operations.md`` (its table,
  its notes, its TOML example) and every ``CHATSERVER_*`` variable and "Setting `x`"
  named anywhere in the docs;
- the command line (the real argparse parser of ``chatserver.cli``) with the synopsis and
  the command table of ``docs/operations.md``, and every ``chatserver …`` command line
  written in the docs;
- the routes of the app (``create_app``, with the demo's routes and the two sockets) with
  every ``METHOD /path`` and every `` `/path` `` written in the docs.

Plus the links between the docs' headings (``[…](#anchor)``, ``[…](other.md#anchor)``).

Each failure says what is missing where. None of this needs a running server.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from chatserver.cli import _parser
from chatserver.config import SETTINGS, Settings
from chatserver.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OPERATIONS = DOCS / "operations.md"
PROTOCOL = DOCS / "protocol.md"
API = "/api/v1"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def doc_files() -> list[Path]:
    """Every Markdown page that tells a user or operator something."""
    files = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
    files += sorted((ROOT / "chatserver").rglob("README.md"))  # the widget's, wherever it lives
    files += sorted(p for p in (ROOT / "bench").glob("*.md"))
    return [p for p in files if p.is_file()]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def lines(path: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(path.read_text().splitlines(), start=1)


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading of that level or higher."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    assert match, f"no heading {heading!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)


# --- settings ------------------------------------------------------------------------------

SETTING_NAMES = {s.name for s in SETTINGS}
SETTING_ENVS = {s.env for s in SETTINGS}

# Environment variables the docs name that are not settings of the server.
NOT_SETTINGS = {
    # Where the browser tests write their screenshots and reports (widget README).
    "CHATSERVER_ARTIFACTS",
}


def test_every_setting_has_a_row_in_the_operations_table() -> None:
    """Each setting is a row of docs/operations.md's table, under its name and variable.

    (``tests/test_config.py`` also checks that the table is exactly the generated one.)
    """
    text = OPERATIONS.read_text()
    missing = [f"{s.name} ({s.env})" for s in SETTINGS if f"| `{s.name}` | `{s.env}` |" not in text]
    assert not missing, (
        f"settings without a row in {rel(OPERATIONS)}'s settings table: {missing}; paste "
        "chatserver.config.settings_table_markdown() between its table markers"
    )


def test_every_environment_variable_named_in_the_docs_is_a_setting() -> None:
    wrong = [
        f"{rel(path)}:{n}: {name}"
        for path in doc_files()
        for n, line in lines(path)
        for name in re.findall(r"\bCHATSERVER_[A-Z0-9_]*[A-Z0-9]\b", line)
        if name not in SETTING_ENVS | NOT_SETTINGS
    ]
    assert not wrong, f"environment variables that are no setting: {wrong}"


def setting_mentions(path: Path) -> Iterator[tuple[int, str]]:
    """(line, name) of each place ``path`` names a setting as one.

    "Settings `a`, `b` and `c`" anywhere, "- Setting `a`" opening a bullet (a singular
    "Setting `status` sets …" in prose is a field), the names that open a bullet of
    "Notes on some settings", and the keys of a TOML example.
    """
    text = path.read_text()
    names = r"((?:`[a-z0-9_*]+`(?:,\s*|\s+and\s+|\s+or\s+)?)+)"
    for match in re.finditer(rf"\bSettings {names}|^- Setting {names}", text, re.M):
        n = text.count("\n", 0, match.start()) + 1
        for name in re.findall(r"`([a-z0-9_*]+)`", match.group(1) or match.group(2)):
            yield n, name
    if "Notes on some settings" in text:
        notes = section(text, "Settings").split("Notes on some settings", 1)[1]
        offset = text.index(notes)
        for match in re.finditer(r"^- ((?:`[a-z0-9_]+`(?:, | and )?)+)", notes, re.M):
            n = text.count("\n", 0, offset + match.start()) + 1
            for name in re.findall(r"`([a-z0-9_]+)`", match.group(1)):
                yield n, name
    for match in re.finditer(r"^```toml\n(.*?)^```", text, re.M | re.S):
        start = text.count("\n", 0, match.start()) + 2
        for i, line in enumerate(match.group(1).splitlines()):
            key = re.match(r"([a-z0-9_]+)\s*=", line)
            if key:
                yield start + i, key.group(1)


def test_every_setting_named_in_the_docs_exists() -> None:
    wrong = []
    for path in doc_files():
        for n, name in setting_mentions(path):
            if name.endswith("*"):
                if not any(s.startswith(name[:-1]) for s in SETTING_NAMES):
                    wrong.append(f"{rel(path)}:{n}: {name}")
            elif name not in SETTING_NAMES:
                wrong.append(f"{rel(path)}:{n}: {name}")
    assert not wrong, f"settings named in the docs that chatserver.config does not have: {wrong}"


def test_the_setting_mentions_are_found() -> None:
    """The check above really reads the notes and the TOML example (it must not pass empty)."""
    names = {name for _, name in setting_mentions(OPERATIONS)}
    assert {"store", "broker", "secret_key", "site_id", "log_level"} <= names


# --- command line --------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # ("token", "create")
    options: frozenset[str]  # long options, e.g. {"--role", "--name"}

    @property
    def name(self) -> str:
        return " ".join(self.words)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def long_options(parser: argparse.ArgumentParser) -> frozenset[str]:
    return frozenset(
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    )


def commands() -> list[Command]:
    """Every command the parser runs (the leaves: ``token create``, not ``token``)."""
    found = []

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        children = subcommands(parser)
        if not children:
            found.append(Command(words, long_options(parser)))
        for word, child in children.items():
            walk(child, (*words, word))

    walk(_parser(), ())
    return found


GLOBAL_OPTIONS = long_options(_parser())


def synopsis() -> list[str]:
    """The lines of the code block under docs/operations.md's "Commands"."""
    blocks = code_blocks(section(OPERATIONS.read_text(), "Commands"))
    assert blocks, f"{rel(OPERATIONS)}: no synopsis code block under ## Commands"
    return [line.strip() for line in blocks[0].splitlines() if line.strip()]


def invocation(line: str) -> tuple[tuple[str, ...], list[str]]:
    """The command words and the options of what follows ``chatserver`` on a line."""
    line = re.sub(r"\[--config FILE\]", "", line)
    line = re.sub(r"^\s*--config(?:=|\s+)\S+", "", line)  # the global option, before the command
    line = re.split(r"\s(?:\||>|&&|;|#)\s?", line)[0]
    try:
        tokens = shlex.split(line)
    except ValueError:
        tokens = line.split()
    words: list[str] = []
    options: list[str] = []
    for token in tokens:
        token = token.strip("[]")
        if token.startswith("--"):
            options.append(token.split("=", 1)[0])
        elif re.fullmatch(r"[a-z][a-z-]*", token) and not options:
            words.append(token)
    return tuple(words), options


def test_every_command_is_in_the_synopsis_and_the_table() -> None:
    """Each command has a synopsis line with each of its options, and a row in the table."""
    lines_ = synopsis()
    text = OPERATIONS.read_text()
    problems = []
    for command in commands():
        mine = [
            line
            for line in lines_
            if line.startswith("chatserver ")
            and invocation(line[len("chatserver ") :])[0][: len(command.words)] == command.words
        ]
        if not mine:
            problems.append(f"`chatserver {command.name}`: no line in the synopsis")
        else:
            shown = {o for line in mine for o in invocation(line[len("chatserver ") :])[1]}
            for option in sorted(command.options - shown - {"--config"}):
                problems.append(f"`chatserver {command.name}`: option {option} not in the synopsis")
        if not re.search(rf"^\| `{re.escape(command.name)}( [^`]*)?` \|", text, re.M):
            problems.append(f"`chatserver {command.name}`: no row in the command table")
    for option in sorted(GLOBAL_OPTIONS):
        if not any(option in line for line in lines_):
            problems.append(f"global option {option}: not in the synopsis")
    assert not problems, f"{rel(OPERATIONS)} ## Commands lacks: " + "; ".join(problems)


def command_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text after ``chatserver``) of each command line written in ``path``.

    Only in code: a fenced block's lines and inline `` `…` `` spans, so that prose such as
    "several chatserver processes" is not taken for a command.
    """
    text = path.read_text()
    spans: list[tuple[int, str]] = []
    for match in re.finditer(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
        start = text.count("\n", 0, match.start()) + 2
        spans += [(start + i, line) for i, line in enumerate(match.group(1).splitlines())]
    outside = re.sub(
        r"^```[^\n]*\n.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.M | re.S
    )
    for match in re.finditer(r"`([^`\n]+)`", outside):
        spans.append((outside.count("\n", 0, match.start()) + 1, match.group(1)))
    for n, span in spans:
        for match in re.finditer(r"(?:^|(?<=[\s/]))chatserver((?: [^\s|>;&#]+)+)", span):
            before = span[: match.start()].split()
            if before and before[-1].startswith("-"):
                continue  # a value of another program's option: `bench --targets chatserver`
            yield n, match.group(1).strip()


def test_every_command_line_in_the_docs_exists() -> None:
    """``chatserver X Y --opt`` in any doc: X Y is a command and --opt one of its options."""
    known = {c.words: c for c in commands()}
    groups = {c.words[:1] for c in commands() if len(c.words) > 1}
    wrong = []
    seen = 0
    for path in doc_files():
        for n, rest in command_lines(path):
            words, options = invocation(rest)
            where = f"{rel(path)}:{n}: `chatserver {rest}`"
            if not words:
                bad = [o for o in options if o not in GLOBAL_OPTIONS]
                if bad:
                    wrong.append(f"{where}: no such option {bad}")
                seen += 1
                continue
            seen += 1
            command = next((known[words[:k]] for k in (2, 1) if words[:k] in known), None)
            if command is None:
                reason = (
                    f"{words[0]} needs one of {sorted(w[1] for w in known if w[0] == words[0])}"
                    if words[:1] in groups
                    else f"no command {words[0]!r}"
                )
                wrong.append(f"{where}: {reason}")
                continue
            bad = [o for o in options if o not in command.options | GLOBAL_OPTIONS]
            if bad:
                wrong.append(f"{where}: `chatserver {command.name}` has no option {bad}")
    assert seen > 10, "the command lines in the docs were not found"
    assert not wrong, f"command lines in the docs that the CLI does not have: {wrong}"


# --- endpoints -----------------------------------------------------------------------------


def normalise(path: str) -> str:
    """``/conversations/{conversation_id}?x=`` and ``/widget.<hash>.js`` as route shapes."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    path = re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path)
    return path.rstrip(".:") or "/"


@dataclass(frozen=True)
class Endpoints:
    routes: frozenset[tuple[str, str]]  # (method, normalised path); GET routes also answer HEAD
    prefixes: frozenset[str]  # mounts of files (``/console/static``)

    def has(self, method: str | None, path: str) -> bool:
        """Whether ``path`` (absolute, or relative to /api/v1) is served (with ``method``)."""
        for candidate in (path, API + path if path != "/" else API):
            if candidate.endswith("…"):
                stem = candidate.rstrip("…")
                if any(p.startswith(stem) for _, p in self.routes) or any(
                    (m + "/").startswith(stem) or stem.startswith(m + "/") for m in self.prefixes
                ):
                    return True
                continue
            if any(candidate == m or candidate.startswith(m + "/") for m in self.prefixes):
                return method in (None, "GET", "HEAD")
            if method is None:
                if any(p == candidate or p.startswith(candidate + "/") for _, p in self.routes):
                    return True
            elif (method, candidate) in self.routes or (
                method == "HEAD" and ("GET", candidate) in self.routes
            ):
                return True
        return False


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Endpoints:
    """The app's routes, with the demo's (``serve --demo``) and the two sockets."""
    data_dir = tmp_path_factory.mktemp("docs-data")
    app = create_app(Settings.from_mapping({"data_dir": str(data_dir)}), demo=True)
    routes: set[tuple[str, str]] = set()
    prefixes: set[str] = set()

    def walk(items: list[object], prefix: str) -> None:
        for item in items:
            if isinstance(item, Mount):
                if item.routes:
                    walk(list(item.routes), prefix + item.path)
                else:
                    prefixes.add(prefix + item.path)
            elif isinstance(item, Route):
                for method in item.methods or ():
                    if method != "HEAD":
                        routes.add((method, normalise(prefix + item.path)))
            else:
                path = getattr(item, "path", None)
                if path is not None:  # a WebSocketRoute, should one be added
                    routes.add(("GET", normalise(prefix + path)))

    walk(list(app.routes), "")
    for path in getattr(app, "sockets", {}):
        routes.add(("GET", normalise(path)))
    return Endpoints(frozenset(routes), frozenset(prefixes))


# ``METHOD /path``, also in the shapes "`GET`/`POST /webhooks`" and "GET, PATCH /x".
METHOD_PATH = re.compile(
    r"\b((?:(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)`?\s*(?:/|,|and|or)\s*`?)*)"
    r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)`?\s+`?(/[^\s`|,;)\]]*)"
)


def bare_paths(text: str) -> Iterator[tuple[int, str]]:
    """(line, path) of each inline code span that is just a path: `` `/console` ``.

    Spans are paired from the left, so the "/" in "`after_seq`/`seq`" is no path.
    """
    for match in re.finditer(r"`([^`\n]+)`", text):
        if re.fullmatch(r"/\S*", match.group(1)):
            yield text.count("\n", 0, match.start()) + 1, match.group(1)


# Bare `/paths` in the docs that are not the server's URLs, and why.
NOT_ROUTES = {
    # Files of the shared design documents and of a host, not URLs.
    "/work/shared/docs/PROTOCOL.md",
    "/work/shared/docs/ARCHITECTURE.md",
    "/work/shared/docs/PRIVACY.md",
    "/etc/chatserver/env",
    "/etc/chatserver/chatserver.toml",
    "/etc/systemd/system/chatserver.service",
}
# Pages where `/` is a key on the keyboard (the console's canned-response key), not a URL.
SLASH_IS_A_KEY = {"docs/console.md"}


def method_paths(text: str) -> Iterator[tuple[int, str, str]]:
    """(line, method, path) of each ``METHOD /path`` in ``text``."""
    for match in METHOD_PATH.finditer(text):
        n = text.count("\n", 0, match.start()) + 1
        path = match.group(3)
        for method in {*re.findall(r"[A-Z]+", match.group(1)), match.group(2)}:
            if method in METHODS:
                yield n, method, path


def test_every_endpoint_named_in_the_docs_exists(endpoints: Endpoints) -> None:
    """Each ``METHOD /path`` and `` `/path` `` in the docs is served (paths under /api/v1
    may be written relative to it, as in protocol.md's tables; ``{x}`` and ``<x>`` are
    parameters, ``…`` a prefix)."""
    wrong = []
    for path in doc_files():
        text = path.read_text()
        for n, method, url in method_paths(text):
            if not endpoints.has(method, normalise(url)):
                wrong.append(f"{rel(path)}:{n}: {method} {url}")
        for n, url in bare_paths(text):
            if url in NOT_ROUTES or (url == "/" and rel(path) in SLASH_IS_A_KEY):
                continue
            name = url.rsplit("/", 1)[-1]
            if "." in name and not name.endswith((".js", ".json", ".css", ".svg", ".ico", ".html")):
                wrong.append(
                    f"{rel(path)}:{n}: `{url}` (a file path? add it to NOT_ROUTES with the reason)"
                )
                continue
            if not endpoints.has(None, normalise(url)):
                wrong.append(f"{rel(path)}:{n}: `{url}`")
    assert not wrong, f"endpoints named in the docs that the app does not serve: {wrong}"


def documented_endpoints(text: str) -> set[tuple[str, str]]:
    """(method, absolute normalised path) of each endpoint ``text`` names with its method;
    relative paths are taken both as written and under /api/v1."""
    found = set()
    for _, method, url in method_paths(text):
        path = normalise(url)
        found.add((method, path))
        if not path.startswith(API):
            found.add((method, API + path))
    return found


def test_every_endpoint_is_in_protocol_md(endpoints: Endpoints) -> None:
    """Each route and method is named in docs/protocol.md as ``METHOD /path`` (API routes
    may be relative to /api/v1, a GET page may be a bare `` `/path` ``), and each mount of
    files as `` `/prefix/…` ``. The API's fields are in the OpenAPI document, whose
    match with the routes ``tests/web/test_openapi.py`` checks."""
    text = PROTOCOL.read_text()
    named = documented_endpoints(text)
    bare = {normalise(u) for _, u in bare_paths(text)}
    missing = [
        f"{method} {path}"
        for method, path in sorted(endpoints.routes, key=lambda r: (r[1], r[0]))
        if (method, path) not in named and not (method == "GET" and path in bare)
    ]
    for prefix in sorted(endpoints.prefixes):
        if f"`{prefix}/…`" not in text and f"`{prefix}/...`" not in text:
            missing.append(f"`{prefix}/…` (files)")
    assert not missing, f"served but not named in {rel(PROTOCOL)}: {missing}"


def test_the_endpoints_are_found(endpoints: Endpoints) -> None:
    """The route walk sees the API, the sockets, the pages and the demo (so it cannot pass empty)."""
    for route in [
        ("GET", "/api/v1/conversations"),
        ("PATCH", "/api/v1/conversations/{}"),
        ("GET", "/ws/visitor"),
        ("GET", "/healthz"),
        ("POST", "/demo/identity"),
    ]:
        assert route in endpoints.routes, route
    assert ("GET", "/conversations/{}/messages") in documented_endpoints(PROTOCOL.read_text())


# --- links between the docs ----------------------------------------------------------------


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of ``path``."""
    found: set[str] = set()
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    for heading in re.findall(r"^#+ (.+?)\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, i = slug, 0
        while candidate in found:
            i += 1
            candidate = f"{slug}-{i}"
        found.add(candidate)
    return found


def test_every_link_between_the_docs_resolves() -> None:
    wrong = []
    for path in doc_files():
        text = re.sub(
            r"^```.*?^```",
            lambda m: "\n" * m.group(0).count("\n"),
            path.read_text(),
            flags=re.M | re.S,
        )
        for match in re.finditer(r"\]\(([^)\s]+)\)", text):
            target = match.group(1)
            if re.match(r"[a-z]+:", target):
                continue  # http://, mailto:
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            n = text.count("\n", 0, match.start()) + 1
            if not linked.exists():
                wrong.append(f"{rel(path)}:{n}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                wrong.append(f"{rel(path)}:{n}: {target} (no such heading)")
    assert not wrong, f"links that lead nowhere: {wrong}"
