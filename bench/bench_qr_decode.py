"""In-page QR decoding speed: ``QrDecoder.decode`` (miniapp_mock/pages/qr-decode.js) in Chromium.

Measured in the page, on ``ImageData`` already taken from a canvas:
- (a) a 1000x750 phone photo of a scan code (``qr_png``) filling about 40 % of the frame,
  turned and tilted a little, JPEG;
- (b) the same kind of photo at 1600x1200;
- (c) a clean code of about 400 px (no photo: ``qr_png`` with 10 px modules, 410x410);
- (d) a 1000x750 photo of the desk with no code: the time to give up and return null;
- (e) the worst case found: a 1600x1600 sheet tiled with finder patterns and nothing else;
- (f) the read rate over ``--sample`` photos drawn by ``qr_photos.everyday_shot`` (any
  rotation and coverage, tilt to 30°, blur to 0.4 module, dim light, shadow, noise, JPEG),
  each decoded once at full size as the page's first attempt does, with the median time;
  a wrong text would fail the run.
Baseline, per image: ``getImageData`` plus one plain loop turning the RGBA into greyscale
(every pixel read once), the least work any decoder must do on that image.

Each figure is the median of several timed rounds (each round decodes the image a few
times), and every ratio is against the baseline measured on the same image in the same run,
so figures from different machines compare by their ratios. Photos come from the test
suite's simulator (tests/browser/qr_photos.py) with fixed seeds. Runs in well under a minute.
Usage: ``python bench/bench_qr_decode.py [--rounds 7] [--repeat 3] [--sample 200]``.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright

from signing.qr import qr_png
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.qr_photos import Shot, everyday_shot, finder_sheet, photograph

DECODER = ROOT / "miniapp_mock" / "pages" / "qr-decode.js"
URL = "http://192.168.1.20:8000/miniapp/#/scan/Qb7Kx2mNp4Rt8Vw1Yz3Ac5"

PAGE = """
window.bench = async (encoded, rounds, repeat) => {
  const raw = atob(encoded);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const bitmap = await createImageBitmap(new Blob([bytes]));
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext("2d", {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0);
  const median = (values) => values.sort((a, b) => a - b)[values.length >> 1];
  const time = (work) => {
    work();  // warm up
    const rates = [];
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      for (let k = 0; k < repeat; k++) work();
      rates.push((performance.now() - start) / repeat);
    }
    return median(rates);
  };
  let sink = 0;
  const baseline = time(() => {
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const grey = new Uint8Array(canvas.width * canvas.height);
    for (let i = 0, j = 0; j < grey.length; i += 4, j++) {
      grey[j] = (data[i] * 77 + data[i + 1] * 150 + data[i + 2] * 29) >> 8;
    }
    sink += grey[grey.length >> 1];
  });
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  let result = null;
  const decode = time(() => {
    result = QrDecoder.decode(pixels.data, pixels.width, pixels.height);
  });
  return {width: canvas.width, height: canvas.height, baseline, decode, sink,
          text: result && result.text};
};

window.readOnce = async (encoded) => {
  const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes]));
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0);
  const pixels = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const start = performance.now();
  const result = QrDecoder.decode(pixels.data, pixels.width, pixels.height);
  return {ms: performance.now() - start, text: result && result.text};
};
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per figure")
    parser.add_argument("--repeat", type=int, default=3, help="decodes per round")
    parser.add_argument("--sample", type=int, default=200, help="everyday photos for (f)")
    arguments = parser.parse_args(argv)
    rounds, repeat = max(1, arguments.rounds), max(1, arguments.repeat)
    if not DECODER.exists():
        print(f"{DECODER} is missing")
        return 1

    tilted = Shot(coverage=0.4, rotation=17, tilt=15, tilt_axis=30, blur=0.15, noise=4, seed=7)
    cases = [  # (label, image bytes, expected text)
        ("(a) photo 1000x750, code ~40 %", photograph(qr_png(URL), tilted).data, URL),
        (
            "(b) photo 1600x1200, code ~40 %",
            photograph(qr_png(URL), replace(tilted, size=1600)).data,
            URL,
        ),
        ("(c) clean code ~400 px", qr_png(URL, box_size=10), URL),
        ("(d) photo 1000x750, no code", photograph(None, Shot(noise=4, seed=8)).data, None),
        ("(e) 1600x1600 sheet of 31,329 finder look-alikes", finder_sheet(1600, 1), None),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_content("<!doctype html><title>bench</title>")
        page.add_script_tag(path=str(DECODER))
        page.add_script_tag(content=PAGE)
        print(f"QR decoder benchmark: median of {rounds} rounds x {repeat} decodes, in Chromium")
        failed = False
        for label, image, expected in cases:
            figures = page.evaluate(
                "([image, rounds, repeat]) => window.bench(image, rounds, repeat)",
                [base64.b64encode(image).decode(), rounds, repeat],
            )
            verdict = "ok" if figures["text"] == expected else f"WRONG: {figures['text']!r}"
            failed |= figures["text"] != expected
            ratio = figures["decode"] / figures["baseline"]
            print()
            print(f"  {label}  [{figures['width']}x{figures['height']}, result {verdict}]")
            print(f"    QrDecoder.decode                       {figures['decode']:10.2f} ms")
            print(f"    baseline: getImageData + grey loop     {figures['baseline']:10.2f} ms")
            print(f"    ratio to baseline                      {ratio:10.1f}")
        read, times, code = 0, [], qr_png(URL)
        for seed in range(max(1, arguments.sample)):
            photo = photograph(code, everyday_shot(10_000 + seed)).data
            encoded = base64.b64encode(photo).decode()
            outcome = page.evaluate("image => window.readOnce(image)", encoded)
            times.append(outcome["ms"])
            if outcome["text"] == URL:
                read += 1
            elif outcome["text"] is not None:
                failed = True
                print(f"  WRONG TEXT on everyday_shot({10_000 + seed}): {outcome['text']!r}")
        print()
        print(f"  (f) everyday photos, {len(times)} drawn, each decoded once")
        print(f"    read                                   {read:10d} ({read / len(times):.1%})")
        print(f"    median decode                          {statistics.median(times):10.2f} ms")
        browser.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
