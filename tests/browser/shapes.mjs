// Trajectory shapes in headless Chromium: every token gets a badge, the small multiples draw one
// frame per token grouped by shape, the filter narrows the groups and dims the text, a frame
// click selects its token, and a shared link carries the labels before its model has loaded.
// Usage: node tests/browser/shapes.mjs [dist]
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve } from './server.mjs';
import {
  NO_WEBGPU, LOAD_TIMEOUT, RUN_TIMEOUT, anyFailed, check, generate, iterations, launch, open, shot, waitStatus,
} from './harness.mjs';

const root = path.resolve(process.argv[2] ?? 'dist');
const server = await serve(root);
const base = `http://127.0.0.1:${server.address().port}/`;

const badges = (page) => page.getByTestId('token').evaluateAll((ts) => ts.map((t) => t.querySelector('[data-testid=shape]')?.dataset.shape ?? null));
const groups = (page) => page.getByTestId('shape-group').evaluateAll((gs) => Object.fromEntries(gs
  .filter((g) => getComputedStyle(g).display !== 'none')
  .map((g) => [g.dataset.shape, Number(g.dataset.count)])));
const dimmed = (page) => page.getByTestId('token').evaluateAll((ts) => ts.map((t) => t.classList.contains('dimmed')));
/// Share of a group canvas' pixels that are not white.
const inked = (page, shape) => page.locator(`[data-testid=shape-group][data-shape=${shape}] canvas`).evaluate((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 600) ink++;
  return ink / (d.length / 4);
});

function count(shapes) {
  const counts = {};
  for (const s of shapes) counts[s] = (counts[s] ?? 0) + 1;
  return counts;
}

try {
  const cpu = await launch(NO_WEBGPU);
  const page = await open(cpu, 'shapes', base);
  let link;
  await check('shapes: every token has a badge and the small multiples group them by shape', async () => {
    assert.match(await waitStatus(page, /^(ready|error)/, LOAD_TIMEOUT), /^ready/);
    await page.getByTestId('example').nth(1).click();
    await page.getByTestId('exit-criterion').selectOption('none');
    // The bar: at least 64 iterations a token.
    await page.getByTestId('iterations').fill('64');
    await page.getByTestId('max-tokens').fill('4');
    await page.getByTestId('max-tokens').dispatchEvent('change');
    assert.match(await generate(page), /^ready/);
    const shapes = await badges(page);
    assert.ok(shapes.length >= 2, `${shapes.length} tokens`);
    assert.ok(shapes.every((s) => ['converged', 'orbit', 'slider', 'unsettled'].includes(s)), shapes.join());
    assert.deepEqual(await groups(page), count(shapes));
    for (const shape of Object.keys(count(shapes))) {
      assert.ok(await inked(page, shape) > 0.01, `${shape} frames are blank`);
    }
    console.log(`     shapes at 64 iterations: ${JSON.stringify(count(shapes))}`);
    assert.ok((await iterations(page)).every((n) => n === 64));
  });

  await check('shapes: a token held to 4 iterations is too short to tell and gets a group of its own', async () => {
    await page.getByTestId('token').nth(1).click();
    await page.getByTestId('override').fill('4');
    await page.getByTestId('override').dispatchEvent('change');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=token]')[1]?.dataset.iterations === '4'
      && /^ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: RUN_TIMEOUT });
    const shapes = await badges(page);
    assert.equal(shapes[1], 'unsettled');
    assert.match(await page.getByTestId('token').nth(1).getAttribute('title'), /too few to tell/);
    assert.deepEqual(await groups(page), count(shapes));
    assert.match(await page.getByTestId('multiples-notice').textContent(), /fewer than 6 iterations/);
  });

  await check('shapes: the filter keeps one shape in the multiples and dims the others in the text', async () => {
    const shapes = await badges(page);
    await page.getByTestId('shape-filter').selectOption('unsettled');
    assert.deepEqual(await groups(page), { unsettled: count(shapes).unsettled });
    assert.deepEqual(await dimmed(page), shapes.map((s) => s !== 'unsettled'));
    await shot(page, 'shapes-filtered');
    await page.getByTestId('shape-filter').selectOption('orbit');
    if (!shapes.includes('orbit')) {
      assert.deepEqual(await groups(page), {});
      assert.match(await page.getByTestId('multiples-notice').textContent(), /No token's trajectory is orbit/);
    }
    await page.getByTestId('shape-filter').selectOption('all');
    assert.deepEqual(await groups(page), count(shapes));
    assert.ok((await dimmed(page)).every((d) => !d));
  });

  await check('shapes: clicking a frame selects its token', async () => {
    const shapes = await badges(page);
    const first = shapes.indexOf('converged') >= 0 ? 'converged' : shapes[0];
    const index = shapes.indexOf(first);
    await page.getByTestId('token').nth(shapes.length - 1).click();
    // The first frame of a group sits in its top-left corner.
    await page.locator(`[data-testid=shape-group][data-shape=${first}] canvas`).click({ position: { x: 30, y: 30 } });
    const selected = await page.getByTestId('token').evaluateAll((ts) => ts.findIndex((t) => t.classList.contains('selected')));
    assert.equal(selected, index);
    await shot(page, 'shapes');
  });

  await check('shapes: a shared link shows the same badges before its model has loaded', async () => {
    const shapes = await badges(page);
    await page.getByTestId('share').click();
    link = await page.getByTestId('share-url').inputValue();
    let release;
    const held = new Promise((r) => { release = r; });
    const receiver = await open(cpu, 'shapes-receiver', link, async (context) => {
      await context.route('**/model.safetensors', async (route) => { await held; await route.continue(); });
    });
    await receiver.waitForSelector('[data-testid=token]');
    assert.match(await receiver.getByTestId('status').textContent(), /^loading/);
    assert.deepEqual(await badges(receiver), shapes);
    assert.deepEqual(await groups(receiver), count(shapes));
    release();
    await receiver.waitForSelector('[data-testid=reproduced]', { timeout: LOAD_TIMEOUT });
    assert.equal(await receiver.getByTestId('reproduced').textContent(), 'yes');
    assert.deepEqual(await badges(receiver), shapes);
    await receiver.context().close();
  });
  await cpu.close();
} finally {
  server.close();
}
console.log(anyFailed() ? 'shapes tests FAILED' : 'shapes tests passed');
process.exit(anyFailed() ? 1 : 0);
