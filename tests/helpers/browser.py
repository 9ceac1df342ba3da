"""Headless Chromium for tests, driven over the Chrome DevTools Protocol (CDP) with `websockets`.

- `find_chromium()`: Debian's `chromium` (or another Chrome on PATH); tests skip without one.
- `Browser`: starts Chromium with no network beyond 127.0.0.1 (every other host fails to resolve),
  opens one page and records what its console reports: console.error calls, uncaught exceptions
  and the browser's own error log entries (a resource that failed to load, a CSP violation).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_TIMEOUT_S = 30.0


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1000) -> None:
        self._profile = Path(tempfile.mkdtemp(prefix="movierec-chromium-"))
        self._process = subprocess.Popen(
            [
                executable,
                "--headless=new",
                "--no-sandbox",  # tests run as root in CI
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no network but this machine
                f"--window-size={width},{height}",
                f"--user-data-dir={self._profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._next_id = 0
        self.errors: list[str] = []
        self.paused: list[dict[str, Any]] = []  # requests held by Fetch.enable's patterns (`hold`)
        try:
            port = self._devtools_port()
            page = httpx.put(f"http://127.0.0.1:{port}/json/new?about:blank", timeout=10).json()
            self._ws: ClientConnection = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self) -> int:
        marker = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    # -- protocol ---------------------------------------------------------------------------------
    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """One CDP command; events that arrive meanwhile are recorded. Raises on a protocol error."""
        self._next_id += 1
        ident = self._next_id
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._record(message)

    def _record(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Fetch.requestPaused":
            self.paused.append(params)
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"{entry.get('text')} {entry.get('url', '')}".strip())

    def pump(self, seconds: float = 0.1) -> None:
        """Read the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while time.monotonic() < deadline:
                self._record(json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic()))))

    def hold(self, *url_patterns: str) -> None:
        """Hold every request whose URL matches one of the patterns (`*` wildcards) until `release()`:
        a slow answer, made to arrive after a later one without timing anything."""
        self.send("Fetch.enable", patterns=[{"urlPattern": p} for p in url_patterns])

    def release(self, fail: str | None = None) -> None:
        """Let the held requests go on (or fail them with a network error such as "ConnectionRefused"),
        then hold nothing more."""
        self.pump(0.2)
        for request in self.paused:
            if fail is None:
                self.send("Fetch.continueRequest", requestId=request["requestId"])
            else:
                self.send("Fetch.failRequest", requestId=request["requestId"], errorReason=fail)
        self.paused.clear()
        self.send("Fetch.disable")

    # -- page -------------------------------------------------------------------------------------
    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still falsy after {timeout} s: {expression}")
            self.pump(0.1)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
