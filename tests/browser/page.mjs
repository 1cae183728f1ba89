// Drives the built page in headless Chromium, once with WebGPU (SwiftShader) and once without,
// and checks what the page issue promises. Usage: node tests/browser/page.mjs [dist]
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { serve } from './server.mjs';
import {
  NO_WEBGPU, WEBGPU, LOAD_TIMEOUT, RUN_TIMEOUT, anyFailed, artifacts, check, generate, iterations, launch,
  open, pixels, shot, waitStatus,
} from './harness.mjs';

const root = path.resolve(process.argv[2] ?? 'dist');
const server = await serve(root);
const base = `http://127.0.0.1:${server.address().port}/`;

async function thinkingChecks(page, label) {
  await check(`${label}: a prompt generates tokens`, async () => {
    assert.equal(await page.getByTestId('example').nth(0).getAttribute('title'), null);
    assert.match(await page.getByTestId('example').nth(1).getAttribute('title'), /Right answer: 84\./);
    await page.getByTestId('example').nth(1).click();
    await page.getByTestId('exit-criterion').selectOption('none');
    await page.getByTestId('iterations').fill('4');
    await page.getByTestId('max-tokens').fill('8');
    await page.getByTestId('max-tokens').dispatchEvent('change');
    await page.evaluate(() => { window.__longestFrame = 0; });
    const text = await generate(page);
    assert.match(text, /^ready/);
    const counts = await iterations(page);
    assert.ok(counts.length >= 1, 'no tokens');
    assert.deepEqual([...new Set(counts)], [4]);
    console.log(`     longest frame while generating: ${(await page.evaluate(() => window.__longestFrame)).toFixed(0)} ms`);
    console.log(`     ${await page.getByTestId('timing').textContent()}`);
  });
  await check(`${label}: the iterations slider re-runs with the new count`, async () => {
    await page.getByTestId('iterations').fill('9');
    await page.waitForFunction(() => {
      const ts = [...document.querySelectorAll('[data-testid=token]')];
      return ts.length > 0 && ts.every((t) => t.dataset.iterations === '9')
        && /^ready/.test(document.querySelector('[data-testid=status]').textContent);
    }, null, { timeout: RUN_TIMEOUT });
    const timing = await page.getByTestId('timing').textContent();
    assert.match(timing, /control → view \d+ ms/);
    console.log(`     ${timing}`);
  });
  await check(`${label}: the trajectory is drawn and changes when scrubbing`, async () => {
    await page.getByTestId('token').first().click();
    await page.getByTestId('scrub').fill('1');
    const first = await pixels(page, 'trajectory');
    await page.getByTestId('scrub').fill('9');
    const last = await pixels(page, 'trajectory');
    assert.notEqual(first, last);
    const blank = await page.evaluate(() => { const c = document.createElement('canvas'); c.width = 480; c.height = 360; return c.toDataURL(); });
    assert.notEqual(first, blank);
    assert.equal(await page.getByTestId('lens').locator('tbody tr').count(), 9);
  });
  await check(`${label}: clicking the heatmap selects a token and iteration`, async () => {
    const count = await page.getByTestId('token').count();
    const box = await page.getByTestId('heatmap').boundingBox();
    // The last row, third column (layout: 90 px labels, 20 px header, 14 px rows on 640 px).
    const scale = box.width / 640;
    const x = (90 + (640 - 98) / 9 * 2.5) * scale;
    const y = (20 + 14 * (count - 0.5)) * scale;
    await page.getByTestId('heatmap').click({ position: { x, y } });
    assert.equal(await page.getByTestId('iteration').textContent(), 'iteration 3 of 9');
    assert.equal(await page.locator('[data-testid=token].selected').count(), 1);
    assert.equal(await page.getByTestId('token').nth(count - 1).evaluate((t) => t.classList.contains('selected')), true);
  });
  await check(`${label}: exports the trace as JSON and the views as PNG`, async () => {
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-json').click()]);
    const trace = JSON.parse(fs.readFileSync(await json.path(), 'utf8'));
    assert.equal(trace.tokens.length, await page.getByTestId('token').count());
    assert.equal(trace.positions[0].steps.length, 9);
    for (const id of ['export-trajectory', 'export-heatmap']) {
      const [png] = await Promise.all([page.waitForEvent('download'), page.getByTestId(id).click()]);
      assert.equal(fs.readFileSync(await png.path()).subarray(1, 4).toString(), 'PNG');
    }
  });
  await check(`${label}: a per-token override fixes that token's iterations`, async () => {
    await page.getByTestId('token').first().click();
    await page.getByTestId('override').fill('2');
    await page.getByTestId('override').dispatchEvent('change');
    await page.waitForFunction(() => {
      const ts = [...document.querySelectorAll('[data-testid=token]')];
      return ts.length > 1 && ts[0].dataset.iterations === '2' && ts.slice(1).every((t) => t.dataset.iterations === '9')
        && /^ready/.test(document.querySelector('[data-testid=status]').textContent);
    }, null, { timeout: RUN_TIMEOUT });
    await page.getByTestId('override').fill('');
    await page.getByTestId('override').dispatchEvent('change');
    await page.waitForTimeout(500); // the debounced re-run starts
    await waitStatus(page, /^ready/);
  });
  await check(`${label}: a fraction slider shows the value it is moved to`, async () => {
    const slider = page.getByTestId('init-scale');
    const caption = page.locator('label', { has: slider });
    for (const [value, shown] of [['0.5', 'init scale: 0.50'], ['1', 'init scale: 1.00']]) {
      await slider.fill(value);
      await caption.filter({ hasText: shown }).waitFor({ timeout: 5000 });
      await page.waitForTimeout(500); // the debounced re-run starts
      await waitStatus(page, /^ready/);
    }
  });
  await shot(page, `${label}-generated`);
}

async function badInputChecks(page, label) {
  const expectError = async (pattern) => {
    const text = await waitStatus(page, /^error/);
    assert.match(text, pattern);
  };
  await check(`${label}: an empty prompt says so`, async () => {
    await page.getByTestId('prompt').fill('');
    await page.getByTestId('generate').click();
    await expectError(/empty/);
    await shot(page, `${label}-empty-prompt`);
  });
  await check(`${label}: a prompt longer than the context says so and loses nothing`, async () => {
    const before = await page.getByTestId('text').textContent();
    await page.getByTestId('prompt').fill('the cat sat on the mat. '.repeat(200));
    await page.getByTestId('generate').click();
    await expectError(/context/);
    assert.equal(await page.getByTestId('text').textContent(), before);
    await shot(page, `${label}-long-prompt`);
  });
  await check(`${label}: a model URL that 404s says so`, async () => {
    await page.getByTestId('model-picker').locator('summary').click();
    await page.getByTestId('model-url').fill(`${base}no-model`);
    await page.getByTestId('model-load').click();
    await expectError(/404/);
    await shot(page, `${label}-model-404`);
  });
  await check(`${label}: a URL that is not a model says so`, async () => {
    await page.getByTestId('model-url').fill(`${base}not-a-model`);
    await page.getByTestId('model-load').click();
    await expectError(/not a model/);
    await shot(page, `${label}-not-a-model`);
  });
  await check(`${label}: after the errors the page still generates`, async () => {
    await page.getByTestId('example').nth(2).click();
    assert.match(await generate(page), /^ready/);
    assert.ok((await page.getByTestId('token').count()) >= 1);
  });
}

try {
  const gpu = await launch(WEBGPU);
  const page = await open(gpu, 'webgpu', base);
  await check('webgpu: the default model loads on WebGPU', async () => {
    assert.match(await waitStatus(page, /^(ready|error)/, LOAD_TIMEOUT), /^ready/);
    assert.equal(await page.getByTestId('backend').textContent(), 'webgpu');
  });
  await thinkingChecks(page, 'webgpu');
  await badInputChecks(page, 'webgpu');
  await check('webgpu: a second visit loads the model from the browser cache', async () => {
    await page.reload();
    assert.match(await waitStatus(page, /^(ready|error)/, LOAD_TIMEOUT), /^ready.*from the browser cache/);
  });
  await check('webgpu: a GPU device lost mid-generation says so and the page goes on on the CPU', async () => {
    // Keep the devices the page asks for, so that the test can destroy them.
    await page.addInitScript(() => {
      window.__gpuDevices = [];
      if (!window.GPUAdapter) return;
      const requestDevice = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        const device = await requestDevice.apply(this, args);
        window.__gpuDevices.push(device);
        return device;
      };
    });
    await page.reload();
    assert.match(await waitStatus(page, /^(ready|error)/, LOAD_TIMEOUT), /^ready/);
    assert.ok(await page.evaluate(() => window.__gpuDevices.length) >= 1, 'no device was requested');
    await page.getByTestId('example').nth(1).click();
    const prompt = await page.getByTestId('prompt').inputValue();
    await page.getByTestId('generate').click();
    await page.waitForSelector('[data-testid=token]', { timeout: RUN_TIMEOUT });
    // burn's WebGPU runtime cannot survive its device: the page reloads itself on the CPU.
    const reloaded = page.waitForEvent('load', { timeout: RUN_TIMEOUT });
    await page.evaluate(() => window.__gpuDevices.forEach((d) => d.destroy()));
    await reloaded;
    assert.match(await waitStatus(page, /^(ready|error)/, LOAD_TIMEOUT), /^ready/);
    assert.equal(await page.getByTestId('backend').textContent(), 'cpu');
    assert.match(await page.getByTestId('backend-note').textContent(), /GPU device was lost/);
    assert.equal(await page.getByTestId('prompt').inputValue(), prompt, 'the prompt survives');
    assert.match(await generate(page), /^ready/);
    assert.ok((await page.getByTestId('token').count()) >= 1);
    await shot(page, 'webgpu-device-lost');
  });
  await gpu.close();

  const cpu = await launch(NO_WEBGPU);
  const plain = await open(cpu, 'cpu', base);
  await check('cpu: without WebGPU the model loads on the CPU and the page says so', async () => {
    assert.match(await waitStatus(plain, /^(ready|error)/, LOAD_TIMEOUT), /^ready/);
    assert.equal(await plain.getByTestId('backend').textContent(), 'cpu');
    assert.match(await plain.getByTestId('backend-note').textContent(), /WebGPU.*CPU backend/);
  });
  await thinkingChecks(plain, 'cpu');
  await check('cpu: the model picker loads a model folder from local files', async () => {
    const folder = path.join(root, 'models', 'loopscope-tiny');
    await plain.getByTestId('model-picker').locator('summary').click();
    await plain.getByTestId('model-files').setInputFiles(
      ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => path.join(folder, f)));
    assert.match(await waitStatus(plain, /^ready: local files/, LOAD_TIMEOUT), /^ready: local files/);
    await plain.getByTestId('example').nth(0).click();
    assert.match(await generate(plain), /^ready/);
    assert.ok((await plain.getByTestId('token').count()) >= 1);
  });
  await cpu.close();
} finally {
  server.close();
}
console.log(anyFailed() ? 'browser tests FAILED' : 'browser tests passed');
console.log(`screenshots: ${artifacts}`);
process.exit(anyFailed() ? 1 : 0);
