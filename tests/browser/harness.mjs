// What every browser test shares: launching Debian's Chromium with or without WebGPU, opening
// the page, named checks that record failures, and status waits. Screenshots go to $ARTIFACTS
// (default artifacts/browser); look at them.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const artifacts = path.resolve(process.env.ARTIFACTS ?? 'artifacts/browser');
fs.mkdirSync(artifacts, { recursive: true });

const COMMON = ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--no-first-run', '--disable-sync', '--disable-quic'];
export const WEBGPU = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader'];
// Leaves navigator.gpu in place, but requestAdapter() answers null.
export const NO_WEBGPU = ['--disable-blink-features=WebGPU'];
export const LOAD_TIMEOUT = 240_000;
export const RUN_TIMEOUT = 240_000;

let failed = false;
export const anyFailed = () => failed;

export async function check(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}

export async function launch(args) {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: [...COMMON, ...args] });
}

/// A page in its own context (so its own cache), logging the page's own console lines.
export async function open(browser, label, url, prepare = async () => {}) {
  const context = await browser.newContext({ viewport: { width: 1500, height: 1100 } });
  await prepare(context);
  const page = await context.newPage();
  page.on('console', (m) => { if (m.text().startsWith('loopscope')) console.log(`     [${label}] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`     [${label}] page error: ${e.message}`));
  // Longest gap between animation frames while the page works: frozen frames.
  await page.addInitScript(() => {
    window.__longestFrame = 0;
    let last = performance.now();
    const tick = (t) => { window.__longestFrame = Math.max(window.__longestFrame, t - last); last = t; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  await page.goto(url);
  return page;
}

export const status = (page) => page.getByTestId('status').textContent();

export async function waitStatus(page, pattern, timeout = RUN_TIMEOUT) {
  await page.waitForFunction(
    (p) => new RegExp(p).test(document.querySelector('[data-testid=status]')?.textContent ?? ''),
    pattern.source, { timeout, polling: 100 });
  return status(page);
}

export const iterations = (page) => page.getByTestId('token').evaluateAll((ts) => ts.map((t) => Number(t.dataset.iterations)));
export const pixels = (page, id) => page.getByTestId(id).evaluate((c) => c.toDataURL());
export const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });

export async function generate(page) {
  await page.getByTestId('generate').click();
  return waitStatus(page, /^(ready|error)/);
}

/// The share of a canvas' pixels that differ from the image in `dataUrl`.
export async function pixelDifference(page, id, dataUrl) {
  return page.getByTestId(id).evaluate(async (canvas, url) => {
    const image = new Image();
    image.src = url;
    await image.decode();
    const other = document.createElement('canvas');
    other.width = canvas.width;
    other.height = canvas.height;
    other.getContext('2d').drawImage(image, 0, 0);
    const a = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const b = other.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let differing = 0;
    for (let i = 0; i < a.length; i += 4) {
      if (Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]) > 24) differing++;
    }
    return differing / (a.length / 4);
  }, dataUrl);
}
