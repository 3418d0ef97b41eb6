"""The built package works on its own: build the sdist and, from it, the wheel (what
``python -m build`` does), install the wheel (not editable) into a fresh venv, run that
venv's ``chatserver serve --demo`` outside the checkout, and fetch the pages a user sees
first. Catches files left out of the package and paths that lead back into the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]

# What the served pages must be, by path: (content type prefix, a string in the body).
PAGES = {
    "/healthz": ("application/json", '"ok"'),
    "/": ("text/html", "/console"),
    "/widget.js": ("text/javascript", "ChatWidget"),
    "/console": ("text/html", "/console/static/console.js"),
    "/console/static/console.js": ("text/javascript", "import"),
    "/console/static/console.css": ("text/css", "{"),
    "/console/static/i18n/nn.js": ("text/javascript", "export"),
    "/demo": ("text/html", "/widget.js"),
    "/favicon.svg": ("image/svg+xml", "<svg"),
    "/favicon.ico": ("image/vnd.microsoft.icon", "PNG"),
    "/api/docs": ("text/html", "/api/v1/openapi.json"),
    "/api/v1/openapi.json": ("application/json", '"openapi"'),
}


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


@pytest.mark.timeout(900)
def test_the_built_wheel_installs_and_serves(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)])
    for line in (build.stdout + build.stderr).splitlines():
        # setuptools' own notes on byte-compiling are not about this project's metadata.
        assert "deprecat" not in line.lower() or "byte-compil" in line, line
    wheels = list(dist.glob("chatserver-*.whl"))
    assert len(wheels) == 1, list(dist.iterdir())
    assert list(dist.glob("chatserver-*.tar.gz")), list(dist.iterdir())
    wheel = wheels[0]
    print(f"{wheel.name}: {wheel.stat().st_size} bytes")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "chatserver/web/static/widget/widget.js" in names
    assert "chatserver/web/static/console/static/i18n/nb.js" in names
    assert "License-Expression: LicenseRef-Proprietary" in metadata

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", str(wheel)])
    version = run([str(env_dir / "bin" / "chatserver"), "--version"])
    assert version.stdout.strip() in wheel.name

    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSERVER_")}
    env.update(CHATSERVER_DATA_DIR=str(data), PYTHONDONTWRITEBYTECODE="1")
    elsewhere = tmp_path / "cwd"  # not the checkout: nothing may be found through it
    elsewhere.mkdir()
    proc = subprocess.Popen(
        [str(env_dir / "bin" / "chatserver"), "serve", "--demo", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)  # polling a starting process, bounded by the deadline
        for path, (content_type, needle) in PAGES.items():
            response = httpx.get(base + path, timeout=10)
            assert response.status_code == 200, (path, response.status_code, response.text)
            assert response.headers["content-type"].startswith(content_type), (
                path,
                response.headers["content-type"],
            )
            assert needle in response.text, path
        # One Swagger UI file, from the swagger-ui-bundle package's folder.
        asset = httpx.get(base + "/api/docs/swagger-ui-bundle.js", timeout=10)
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith("text/javascript")
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
    assert "Traceback" not in output, output
