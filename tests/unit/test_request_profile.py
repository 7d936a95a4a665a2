"""bench/request_profile.py sorts py-spy's samples into owners: the profile docs/benchmarks.md
quotes for the request path is only as right as this sorting."""

from __future__ import annotations

from pathlib import Path

from bench.request_profile import read, summary

# py-spy's raw format (`--format raw --threads`), as it wrote it for the server under load.
MAIN = "thread (101): MainThread;Handle._run (asyncio/events.py:80)"
INFERENCE = "thread (202): inference"
RAW = "\n".join(
    [
        "thread (101): MainThread;run (asyncio/runners.py:190);"
        "Handle._run (asyncio/events.py:80) 40",
        f"{MAIN};EmbedCell.embed (service/server/v1/embed.py:111) 5",
        f"{MAIN};TextTokenizer.encodings (service/server/tokenizer.py:136) 3",
        f"{MAIN};Condition.notify (threading.py:382) 4",
        "thread (101): MainThread;EpollSelector.select (selectors.py:468) 6",
        f"{INFERENCE};Batcher.infer (service/server/batcher.py:354);"
        "Session.run (onnxruntime/capi/onnxruntime_inference_collection.py:406) 30",
        f"{INFERENCE};Batcher.next_batch (service/server/batcher.py:268);"
        "Condition.wait (threading.py:327) 10",
        "thread (303): Thread-1 (_poll_wrapper);Thread._bootstrap (threading.py:1002);"
        "Thread.run (threading.py:982) 2",
        "not a sample line",
    ]
)


def test_samples_are_sorted_into_their_owners_and_threads(tmp_path: Path) -> None:
    path = tmp_path / "raw.txt"
    path.write_text(RAW)
    profile = read(path)
    assert profile.samples == 100
    assert profile.by_thread == {"MainThread": 58, "inference": 40, "Thread-1 (_poll_wrapper)": 2}
    assert profile.by_owner == {
        "asyncio loop": 40,  # a callback in native code: gRPC's Cython, under grpc.aio
        "ONNX Runtime": 30,
        "hand-off": 14,  # the loop waking the inference thread, the thread waiting for work
        "wait": 6,
        "attnserve": 5,
        "tokenizer": 3,
        "gRPC": 2,  # the poller thread, inside native code
    }
    # Our code anywhere on the stack: the cell, the tokenizer wrapper, the batcher.
    assert profile.touching_ours == 5 + 3 + 30 + 10
    table = summary(profile)
    assert "| ONNX Runtime | 30.0% |" in table
    assert "`Handle._run (asyncio/events.py:80)` in MainThread | asyncio loop | 40.0% |" in table
