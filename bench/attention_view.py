"""The attention view (`attnserve attend --html`) on a long text: file size, time to first
render and time per interaction, in a headless Chromium.

    python bench/attention_view.py --artifact DIR [--tokens 512] [--template OLD.html ...]

Starts a server on the artifact, fetches a text's maps at `--tokens` tokens (all layers and
heads, as `attend --html` does), writes the page with the current template and with each
`--template` given (e.g. an older one: `git show REV:service/client/attention_view.html`), and
opens each offline in Chromium (playwright). Times: from navigation to the page's
`data-ready` (decoding the maps and the first draw), then the mean of a few synchronous redraws
each, up to the next frame painted: a layer chosen, a head chosen, a token hovered (its links
and shading), the token left (every link of the map drawn), a cell of the map hovered. Pages are
measured in turn, `--repeats` times each (a fresh browser context each time); the table shows
the medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnserve.service.client import html_view
from attnserve.service.client.attention import TextAttention, fetch_attention
from attnserve.service.client.client import EmbedderClient
from bench.common import machine_line
from bench.serve import start_server

PARAGRAPH = (
    "The river rose through the night, and by morning the bank where the old mill stood was "
    "under water. Engineers had warned for years that the levee would not hold a storm of that "
    "size; the town council had voted twice to delay the repairs. "
)
ROUNDS = 5
# Up to the next frame painted after the handler ran: style, layout and paint count too.
FRAME = (
    "await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));"
    " return performance.now() - t;"
)
# Each interaction as the page's own handlers run it (synchronously), timed in the page.
INTERACTIONS = {
    "layer": "document.querySelector(`#layers button[data-value='${(i % 5) + 1}']`).click()",
    "head": "document.querySelector(`#heads button[data-value='${i % 12}']`).click()",
    "hover token": "document.querySelector(`#queries .tok[data-index='${40 + i}']`)"
    ".dispatchEvent(new MouseEvent('mouseenter'))",
    "leave token": "document.querySelector(`#queries .tok[data-index='${40 + i}']`)"
    ".dispatchEvent(new MouseEvent('mouseleave'))",
    "hover cell": "(() => { const c = document.getElementById('map');"
    " const r = c.getBoundingClientRect(), m = Number(c.dataset.margin);"
    " const s = Number(c.dataset.cell);"
    " c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + m + (30 + i) * s,"
    " clientY: r.top + m + (20 + i) * s})); })()",
}


def long_text(tokens: int) -> str:
    """A text of about `tokens` word pieces (the cap cuts the rest)."""
    return PARAGRAPH * (tokens // 40 + 2)


def measure(browser: Any, page_file: Path) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_file.as_uri(), timeout=120_000)
    page.wait_for_selector("body[data-ready]", timeout=120_000)
    if page.eval_on_selector("body", "b => b.dataset.ready") != "true" or errors:
        raise RuntimeError(f"{page_file.name} did not start: {errors}")
    ready = page.evaluate(
        "async () => { await new Promise((done) => requestAnimationFrame(() => setTimeout(done)));"
        " return performance.now() - performance.getEntriesByType('navigation')[0].startTime; }"
    )
    times = {"ready": float(ready)}
    for name, action in INTERACTIONS.items():
        timed = f"async (i) => {{ const t = performance.now(); {action}; {FRAME} }}"
        runs = [float(page.evaluate(timed, i)) for i in range(ROUNDS)]
        times[name] = statistics.mean(runs)
    context.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--template", type=Path, action="append", default=[])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="attend-view-"))
    process, target = start_server(args.artifact, work, "--warmup", "false")
    try:
        with EmbedderClient(target) as client:
            view = fetch_attention(client, long_text(args.tokens), max_tokens=args.tokens)
    finally:
        process.terminate()
        process.wait(timeout=60)
    pages = {"current": write(view, work / "current.html", None)}
    for template in args.template:
        pages[template.name] = write(view, work / f"{template.stem}-page.html", template)
    print(machine_line())
    print(f"{len(view.tokens)} tokens, maps {view.maps.shape}")
    print("| page | file | ready | " + " | ".join(INTERACTIONS) + " |")
    print("|---|---:|---:|" + "---:|" * len(INTERACTIONS))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in pages}
        for _ in range(args.repeats):  # in turn, so a slower moment hits every page alike
            for name, path in pages.items():
                runs[name].append(measure(browser, path))
        for name, path in pages.items():
            median = {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]}
            cells = " | ".join(f"{median[key]:.0f} ms" for key in INTERACTIONS)
            size = path.stat().st_size / 2**20
            print(f"| {name} | {size:.1f} MiB | {median['ready']:.0f} ms | {cells} |")
        browser.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


def write(view: TextAttention, path: Path, template: Path | None) -> Path:
    """The page for `view`: attnserve's own, or the same data in another template."""
    page = html_view.view_html(view)
    if template is not None:
        data = json.dumps(html_view.page_data(view), ensure_ascii=False).replace("</", "<\\/")
        page = template.read_text(encoding="utf-8")
        page = page.replace("__ATTNSERVE_TITLE__", "attention").replace("__ATTNSERVE_DATA__", data)
    path.write_text(page, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
