"""Screenshot of a run's report.html, e.g. the one in the README (docs/report_demo.png):

    cctv-sr demo /tmp/demo_shot
    python samples/report_screenshot.py /tmp/demo_shot/results docs/report_demo.png

Opens OUTDIR/report.html in headless chromium (Debian's /usr/bin/chromium through
Playwright; no browser is downloaded) at a fixed viewport, waits for the track cards to be
drawn and every image to decode, and saves the page from its top down to the end of the
track cards (at most --max-height px) as a palette PNG. It writes report.html first when the
run has none. Fails on any console error, page error or request that is not a file:// URL.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image  # scikit-image's dependency

CHROMIUM = "/usr/bin/chromium"


def shoot(outdir: Path, png: Path, width: int, max_height: int, chromium: str) -> tuple[int, int]:
    from playwright.sync_api import sync_playwright

    report = outdir / "report.html"
    if not report.is_file():
        from cctv_sr.report import write_report

        write_report(outdir)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: None if r.url.startswith("file://")
                else problems.append(f"request: {r.url}"))
        page.goto(report.resolve().as_uri())
        page.wait_for_load_state("load")
        widths = page.evaluate(
            "async () => { const im = Array.from(document.images);"
            " await Promise.all(im.map(i => { i.loading = 'eager'; return i.decode()"
            ".catch(() => null); })); return im.map(i => i.naturalWidth); }")
        if not widths or min(widths) == 0:
            problems.append(f"images not decoded: {widths}")
        bottom = page.evaluate(
            "() => { const g = document.getElementById('grid');"
            " return Math.ceil(g.getBoundingClientRect().bottom + window.scrollY) + 12; }")
        full = page.evaluate("document.documentElement.scrollHeight")
        height = int(min(bottom, full, max_height))
        raw = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": width,
                                                    "height": height})
        browser.close()
    if problems:
        raise SystemExit("report_screenshot: " + "; ".join(problems))
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    png.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours: a third of the size of the RGB screenshot, the text as sharp
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(png, optimize=True)
    return image.size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path, help="OUTDIR of a run (holding report.html)")
    ap.add_argument("png", type=Path, help="screenshot to write")
    ap.add_argument("--width", type=int, default=1280, help="viewport width (px)")
    ap.add_argument("--max-height", type=int, default=2400, help="cut the page here (px)")
    ap.add_argument("--chromium", default=CHROMIUM, help="chromium executable")
    args = ap.parse_args(argv)
    w, h = shoot(args.outdir, args.png, args.width, args.max_height, args.chromium)
    print(f"{args.png}: {w}x{h}, {args.png.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
