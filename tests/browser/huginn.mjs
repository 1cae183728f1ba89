// The page's model picker loading a quantized Huginn-0125-shaped folder (the real dims, random
// weights, q4 in 1 GiB shards: 2.2 GB) on WebGPU (SwiftShader). With HUGINN_GENERATE=1 it also
// generates one token at one iteration, which on SwiftShader takes about 12 minutes (measured
// on 2 cores), too long for every test run.
// Usage: node tests/browser/huginn.mjs [dist] FOLDER
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve } from './server.mjs';
import { WEBGPU, LOAD_TIMEOUT, anyFailed, check, iterations, launch, open, shot, waitStatus } from './harness.mjs';

const root = path.resolve(process.argv[2] ?? 'dist');
const folder = path.resolve(process.argv[3] ?? '');
const server = await serve(root, { '/huginn-q4/': folder });
const base = `http://127.0.0.1:${server.address().port}/`;
// 2.2 GB through the Cache API into wasm memory, then 3.56 B parameters onto a CPU-emulated GPU.
const HUGE_TIMEOUT = 20 * 60_000;

try {
  const gpu = await launch(WEBGPU);
  const page = await open(gpu, 'huginn', base);
  await check('huginn: the picker loads a Huginn-shaped q4 folder on WebGPU', async () => {
    assert.match(await waitStatus(page, /^(ready|error)/, LOAD_TIMEOUT), /^ready/);
    await page.getByTestId('model-picker').locator('summary').click();
    await page.getByTestId('model-url').fill(`${base}huginn-q4/`);
    await page.getByTestId('model-load').click();
    await waitStatus(page, /^loading/);
    const text = await waitStatus(page, /^(ready|error)/, HUGE_TIMEOUT);
    console.log(`     ${text}`);
    assert.match(text, /^ready/);
    assert.match(text, /2228/, 'the three shards, 2228 MB together');
    assert.equal(await page.getByTestId('backend').textContent(), 'webgpu');
    console.log(`     ${await page.getByTestId('timing').textContent()}`);
  });
  if (process.env.HUGINN_GENERATE === '1') await check('huginn: it generates a token at one iteration', async () => {
    await page.getByTestId('prompt').fill('The cat');
    await page.getByTestId('exit-criterion').selectOption('none');
    await page.getByTestId('iterations').fill('1');
    await page.getByTestId('max-tokens').fill('1');
    await page.getByTestId('max-tokens').dispatchEvent('change');
    await waitStatus(page, /^(ready|error)/, HUGE_TIMEOUT);
    const text = await page.getByTestId('generate').click().then(() => waitStatus(page, /^(ready|error)/, HUGE_TIMEOUT));
    assert.match(text, /^ready/);
    assert.deepEqual(await iterations(page), [1]);
    console.log(`     ${await page.getByTestId('timing').textContent()}`);
    await shot(page, 'huginn-generated');
  });
  await gpu.close();
} finally {
  server.close();
}
process.exit(anyFailed() ? 1 : 0);
