"""Headless Chromium (Debian's `chromium`) for tests, driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: JSON messages ended by a NUL byte, commands on its fd 3, answers and
events on its fd 4). Standard library only: open a page, collect its script errors, evaluate
JavaScript in it."""

import json
import os
import select
import shutil
import subprocess
import tempfile
import time

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One page in a fresh headless Chromium: `errors` holds every uncaught exception, console
    error and error log entry it has reported."""

    def __init__(self, url: str, timeout: float = 60):
        self.timeout, self.errors, self._buffer, self._next_id = timeout, [], b"", 0
        self._profile = tempfile.TemporaryDirectory()
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()
        command = (
            'commands=$1 answers=$2; shift 2; exec "$0" --headless --no-sandbox --disable-gpu --no-first-run '
            '--remote-debugging-pipe "$@" 3<&"$commands" 4>&"$answers"'
        )
        self._process = subprocess.Popen(
            ["bash", "-c", command, CHROMIUM, str(to_browser), str(from_browser),
             f"--user-data-dir={self._profile.name}", "about:blank"],
            pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser)
        os.close(from_browser)
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Page", "Log"):
            self._call(f"{domain}.enable", session=True)
        self._call("Page.navigate", session=True, url=url)
        self._wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise awaited)."""
        result = self._call(
            "Runtime.evaluate", session=True, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self):
        try:
            self._send("Browser.close")
            self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        finally:
            os.close(self._commands)
            os.close(self._answers)
            self._profile.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def _send(self, method: str, session=False, **params) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _call(self, method: str, session=False, **params) -> dict:
        sent = self._send(method, session, **params)
        answer = self._wait_for(lambda message: message.get("id") == sent)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def _wait_for(self, wanted):
        """The first message that is the event `wanted` (a method name) or satisfies it (a predicate),
        noting every error event on the way."""
        matches = (lambda message: message.get("method") == wanted) if isinstance(wanted, str) else wanted
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._read(deadline)
            self._note_error(message)
            if matches(message):
                return message

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _note_error(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details.get("text"))
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.errors.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])
