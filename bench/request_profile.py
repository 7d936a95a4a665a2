"""Where a server's CPU goes under load: a py-spy profile, its samples sorted into owners.

`bench/overhead.py --profile SECONDS` calls `record` on the attnserve server while the same
closed-loop load runs, then prints `summary`: for each thread, its share of all samples, and
each sample's innermost frame (where the time is spent) grouped by who owns that code: attnserve's
own Python, gRPC (its Cython callbacks and poller), ONNX Runtime, the tokenizer, waits (condition
variables, epoll), the asyncio loop itself, the rest. py-spy leaves out samples of threads it
sees idle, so the shares are of the threads' active time; an asyncio `Handle._run` frame with
nothing inside it is a callback in native code, under grpc.aio nearly always gRPC's Cython.

py-spy (`pip install py-spy`) is a profiling tool, not a dependency of attnserve.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Owner of a frame, first match wins; py-spy writes a frame as "function (path:line)", the path
# relative to its package root ("service/server/batcher.py", "grpc/aio/_server.py").
OWNERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # The batcher's hand-off between the event loop and the inference thread.
    ("hand-off", re.compile(r"^Condition\.(wait|notify)|_write_to_self|_read_from_self")),
    ("wait", re.compile(r"^(wait|_wait_for_tstate_lock|select|poll|acquire) \(")),
    ("wait", re.compile(r"\((threading|selectors|queue)\.py")),
    ("gRPC", re.compile(r"\(grpc/|cygrpc|_cython")),
    ("ONNX Runtime", re.compile(r"\(onnxruntime/")),
    ("tokenizer", re.compile(r"\(tokenizers/|\(service/server/tokenizer\.py")),
    ("attnserve", OURS := re.compile(r"\((service|proto/attnserve|attnserve)/")),
    ("protobuf", re.compile(r"\(google/")),
    ("prometheus_client", re.compile(r"\(prometheus_client/")),
    ("asyncio loop", re.compile(r"\(asyncio/")),
)
# A stack that ends in the thread's entry point is a thread inside native code: its owner is
# the thread's (gRPC's poller; an executor's idle worker waiting on its queue).
NATIVE_ENTRY = re.compile(r"^(Thread\.run|_worker) \(")
THREAD_OWNERS = (("gRPC", re.compile(r"poll")), ("wait", re.compile("")))


@dataclass(frozen=True)
class Profile:
    samples: int
    by_thread: Counter[str]  # thread name -> samples
    by_owner: Counter[str]  # owner of the innermost frame -> samples
    by_frame: Counter[str]  # innermost frame -> samples
    touching_ours: int  # samples with an attnserve frame anywhere on the stack


def owner(frame: str, thread: str = "") -> str:
    if NATIVE_ENTRY.match(frame):
        return next(name for name, pattern in THREAD_OWNERS if pattern.search(thread))
    for name, pattern in OWNERS:
        if pattern.search(frame):
            return name
    return "other"


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> Path:
    """Samples every thread of `pid` for `seconds` at `rate` Hz into a raw (collapsed) file."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    subprocess.run(
        [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
         "--format", "raw", "--threads", "--nonblocking", "--output", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


def read(path: Path) -> Profile:
    """A py-spy raw file: one `frame;frame;...;innermost count` line per distinct stack."""
    by_thread: Counter[str] = Counter()
    by_owner: Counter[str] = Counter()
    by_frame: Counter[str] = Counter()
    samples = touching = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # "thread (TID): NAME;outermost frame;...;innermost frame"
        head, *code = stack.split(";")
        name = head.split(": ", 1)[1] if ": " in head else head
        innermost = code[-1] if code else "(no Python frame)"
        samples += count
        by_thread[name] += count
        by_owner[owner(innermost, name)] += count
        by_frame[f"{innermost} [{name}]"] += count
        if any(OURS.search(f) for f in code):
            touching += count
    return Profile(samples, by_thread, by_owner, by_frame, touching)


def summary(profile: Profile, top: int = 12) -> str:
    total = max(profile.samples, 1)
    lines = [f"{profile.samples} samples; attnserve code on the stack in "
             f"{100 * profile.touching_ours / total:.1f}%", "",
             "| thread | share |", "|---|---|"]  # fmt: skip
    lines += [f"| {name} | {100 * n / total:.1f}% |" for name, n in profile.by_thread.most_common()]
    lines += ["", "| innermost frame owned by | share |", "|---|---|"]
    lines += [f"| {name} | {100 * n / total:.1f}% |" for name, n in profile.by_owner.most_common()]
    lines += ["", "| innermost frame, thread | owner | share |", "|---|---|---|"]
    for frame, n in profile.by_frame.most_common(top):
        code, _, thread = frame.rpartition(" [")
        lines.append(f"| `{code}` in {thread[:-1]} | {owner(code, thread[:-1])} | "
                     f"{100 * n / total:.1f}% |")  # fmt: skip
    return "\n".join(lines)
