"""How long `supportbot serve` took to become useful (issue 20), on its normal log:

    models ready 47.0 s after the process started (20 s of it converting packaged models
        into var/models, once: llama_cpp/gguf-e388c63d9b0b58da-q8_0 15 s, me5-small 5 s)
    models ready 17.5 s after the process started (no conversion: the converted models
        were already in var/models)
    first sentiment answer sent 21.7 s after the process started
    first chat reply sent 24.3 s after the process started

The clock starts when the operating system started the process (/proc/self/stat), so the
interpreter's own start and the imports count. What the packaged models' one-time
conversion cost is read from the model cache: each conversion (core.model_refs) leaves a
`.complete` file saying how long it took, so the directories completed while the models
loaded are this start's conversions. The first answers are those the HTTP API sends
(a 2xx to POST /v1/sentiment; to /v1/chat/completions or /v1/conversations/{id}/messages),
each logged once per process; the Gradio UI's are not counted.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

_IMPORTED = time.monotonic()  # the fallback clock where /proc is missing
_TOOK = re.compile(r" in (\d+(?:\.\d+)?)s\s*$")


def process_age_s() -> float:
    """Seconds since this process started (Linux: /proc), else since this module was imported."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def converted_models(cache_dir: Path) -> dict[str, float | None]:
    """The converted copies in the model cache (merged GGUF files sit one folder deeper,
    in llama_cpp/): their path in it -> the seconds the conversion took (None where its
    .complete file does not say)."""
    cache_dir = Path(cache_dir)
    found = {}
    for marker in [*cache_dir.glob("*/.complete"), *cache_dir.glob("*/*/.complete")]:
        try:
            took = _TOOK.search(marker.read_text(encoding="utf-8"))
        except OSError:
            continue
        found[marker.parent.relative_to(cache_dir).as_posix()] = float(took.group(1)) if took else None
    return found


def ready_line(age_s: float, new: dict[str, float | None], cache_dir: Path, cached: int) -> str:
    """The log line: how long until the models were ready, and how much of it was converting."""
    line = f"models ready {age_s:.1f} s after the process started"
    if new:
        total = sum(s for s in new.values() if s)
        each = ", ".join(f"{name} {s:.0f} s" if s is not None else name for name, s in sorted(new.items()))
        return f"{line} ({total:.0f} s of it converting packaged models into {cache_dir}, once: {each})"
    if cached:
        return f"{line} (no conversion: the converted models were already in {cache_dir})"
    return f"{line} (nothing to convert)"


def load_models(runtime) -> None:
    """runtime.load_models(), then the line saying how long the start took."""
    cache_dir = runtime.settings.model_cache_dir
    before = converted_models(cache_dir)
    runtime.load_models()
    new = {name: s for name, s in converted_models(cache_dir).items() if name not in before}
    log.info("%s", ready_line(process_age_s(), new, cache_dir, len(before)))


# the API answers that count: (what, method, path)
FIRST_ANSWERS = (
    ("sentiment answer", "POST", re.compile(r"^/v1/sentiment/?$")),
    ("chat reply", "POST", re.compile(r"^/v1/(?:chat/completions|conversations/[^/]+/messages)/?$")),
)


class FirstAnswers:
    """ASGI middleware: logs, once each, when the first sentiment answer and the first chat
    reply were sent (the last byte of a 2xx response), in seconds after the process
    started. Once both are logged it only passes calls on."""

    def __init__(self, app, clock=process_age_s):
        self.app = app
        self._clock = clock
        self._pending = {what for what, _, _ in FIRST_ANSWERS}

    def _which(self, scope) -> str | None:
        if not self._pending or scope["type"] != "http":
            return None
        for what, method, path in FIRST_ANSWERS:
            if what in self._pending and scope["method"] == method and path.match(scope["path"]):
                return what
        return None

    async def __call__(self, scope, receive, send):
        what = self._which(scope)
        if what is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watched_send(message):
            nonlocal status
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif (message["type"] == "http.response.body" and not message.get("more_body")
                  and 200 <= status < 300 and what in self._pending):
                self._pending.discard(what)
                log.info("first %s sent %.1f s after the process started", what, self._clock())

        await self.app(scope, receive, watched_send)
