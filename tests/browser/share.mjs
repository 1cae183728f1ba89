// Sharing by link, in headless Chromium: generate, share, open the link in a fresh context (its
// own empty cache) and find the sender's view, first from the snapshot while the model download
// is held back, then re-run by the model. Bad links must leave a working page.
// Usage: node tests/browser/share.mjs [dist]
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve } from './server.mjs';
import {
  NO_WEBGPU, WEBGPU, LOAD_TIMEOUT, RUN_TIMEOUT, anyFailed, check, generate, launch, open, pixelDifference,
  pixels, shot, status, waitStatus,
} from './harness.mjs';

const root = path.resolve(process.argv[2] ?? 'dist');
const server = await serve(root);
const base = `http://127.0.0.1:${server.address().port}/`;
// Share of trajectory pixels allowed to differ: antialiasing of 16-bit quantized coordinates.
const PIXEL_TOLERANCE = 0.002;

async function view(page) {
  return {
    tokens: await page.getByTestId('token').evaluateAll((ts) => ts.map((t) => [t.textContent, t.dataset.iterations])),
    selected: await page.getByTestId('token').evaluateAll((ts) => ts.findIndex((t) => t.classList.contains('selected'))),
    iteration: await page.getByTestId('iteration').textContent(),
    pair: await page.getByTestId('components').inputValue(),
  };
}

async function sameView(page, sent) {
  const seen = await view(page);
  assert.deepEqual(seen, sent.view);
  const differing = await pixelDifference(page, 'trajectory', sent.trajectory);
  assert.ok(differing <= PIXEL_TOLERANCE, `${(differing * 100).toFixed(2)}% of trajectory pixels differ`);
}

/// Opens `link` with the model download held until `release()`.
async function openHeld(browser, label, link) {
  let release;
  const held = new Promise((r) => { release = r; });
  const page = await open(browser, label, link, async (context) => {
    await context.route('**/model.safetensors', async (route) => { await held; await route.continue(); });
  });
  return { page, release };
}

try {
  const cpu = await launch(NO_WEBGPU);
  const sender = await open(cpu, 'sender', base);
  let first;
  let link;
  await check('share: Share puts the link in the address bar, the share field and one history entry', async () => {
    assert.match(await waitStatus(sender, /^(ready|error)/, LOAD_TIMEOUT), /^ready/);
    await sender.getByTestId('example').nth(2).click();
    await sender.getByTestId('exit-criterion').selectOption('none');
    await sender.getByTestId('iterations').fill('6');
    await sender.getByTestId('max-tokens').fill('8');
    await sender.getByTestId('max-tokens').dispatchEvent('change');
    assert.match(await generate(sender), /^ready/);
    await sender.getByTestId('token').nth(2).click();
    await sender.getByTestId('scrub').fill('4');
    await sender.getByTestId('components').selectOption('1');
    const entries = await sender.evaluate(() => history.length);
    await sender.getByTestId('share').click();
    link = await sender.getByTestId('share-url').inputValue();
    assert.ok(link.startsWith(`${base}#s=`), link);
    assert.ok(link.length <= 8192, `${link.length} characters`);
    assert.equal(await sender.evaluate(() => location.href), link);
    assert.equal(await sender.evaluate(() => history.length), entries + 1);
    assert.match(await sender.getByTestId('share-size').textContent(), /full trace/);
    console.log(`     ${await sender.getByTestId('share-size').textContent()}`);
    first = { view: await view(sender), trajectory: await pixels(sender, 'trajectory') };
    // Slider moves re-run the model but add no history entries.
    await sender.getByTestId('iterations').fill('5');
    await sender.waitForFunction(() => [...document.querySelectorAll('[data-testid=token]')].every((t) => t.dataset.iterations === '5')
      && /^ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: RUN_TIMEOUT });
    assert.equal(await sender.evaluate(() => history.length), entries + 1);
    await sender.getByTestId('share').click();
    assert.equal(await sender.evaluate(() => history.length), entries + 2);
  });

  await check('share: going back restores the first shared state and re-runs it', async () => {
    await sender.goBack();
    await sender.waitForSelector('[data-testid=reproduced]', { timeout: RUN_TIMEOUT });
    assert.equal(await sender.getByTestId('reproduced').textContent(), 'yes');
    await sameView(sender, first);
  });

  const { page: receiver, release } = await openHeld(cpu, 'receiver', link);
  await check('share: a fresh browser context shows the snapshot before the model has loaded', async () => {
    await receiver.waitForSelector('[data-testid=token]');
    assert.match(await status(receiver), /^loading/);
    assert.match(await receiver.getByTestId('reproducing').textContent(), /waiting for the model/);
    await sameView(receiver, first);
    await shot(receiver, 'share-from-snapshot');
  });
  release();
  await check('share: without WebGPU the model re-runs the link on the CPU backend and reproduces it', async () => {
    await receiver.waitForSelector('[data-testid=reproduced]', { timeout: LOAD_TIMEOUT });
    assert.match(await receiver.getByTestId('reproduced-on').textContent(), /CPU backend/);
    assert.equal(await receiver.getByTestId('reproduced').textContent(), 'yes');
    assert.equal(await receiver.getByTestId('backend').textContent(), 'cpu');
    await sameView(receiver, first);
    await shot(receiver, 'share-reproduced-cpu');
  });

  await check('share: broken, future and hostile links say so and leave a working page', async () => {
    const payload = link.split('#s=')[1];
    const cases = [
      [`${base}#s=${payload.slice(0, 120)}`, /truncated or corrupted/],
      [`${base}#s=AwAA`, /newer loopscope/],
      [`${base}#s=<img src=x onerror=alert(1)>`, /base64url/],
    ];
    for (const [url, message] of cases) {
      const page = await open(cpu, 'bad-link', url);
      let dialogs = 0;
      page.on('dialog', async (d) => { dialogs++; await d.dismiss(); });
      assert.match(await page.getByTestId('link-notice').textContent(), message);
      assert.match(await waitStatus(page, /^(ready|error)/, LOAD_TIMEOUT), /^ready/);
      await page.getByTestId('example').nth(0).click();
      assert.match(await generate(page), /^ready/);
      assert.ok((await page.getByTestId('token').count()) >= 1);
      assert.equal(dialogs, 0);
      await shot(page, 'share-bad-link');
      await page.context().close();
    }
  });
  await cpu.close();

  const gpu = await launch(WEBGPU);
  const { page: onGpu, release: releaseGpu } = await openHeld(gpu, 'webgpu-receiver', link);
  await check('share: a WebGPU browser shows the snapshot, then re-runs it on WebGPU', async () => {
    await onGpu.waitForSelector('[data-testid=token]');
    await sameView(onGpu, first);
    releaseGpu();
    await onGpu.waitForSelector('[data-testid=reproduced]', { timeout: LOAD_TIMEOUT + RUN_TIMEOUT });
    assert.match(await onGpu.getByTestId('reproduced-on').textContent(), /WebGPU/);
    assert.equal(await onGpu.getByTestId('reproduced').textContent(), 'yes');
    await shot(onGpu, 'share-reproduced-webgpu');
  });
  await gpu.close();
} finally {
  server.close();
}
console.log(anyFailed() ? 'share tests FAILED' : 'share tests passed');
process.exit(anyFailed() ? 1 : 0);
