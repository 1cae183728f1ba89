// A static server for the built page (dist/), plus two routes the bad-input checks need:
// /no-model/* answers 404 and /not-a-model/* answers 200 with text that is not a model.
// `mounts` serves more folders: { '/name/': '/path/to/folder' }.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css',
  '.json': 'application/json', '.safetensors': 'application/octet-stream', '.png': 'image/png',
};

export function serve(root, mounts = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname.startsWith('/not-a-model/')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(req.method === 'HEAD' ? undefined : 'this is not a model');
    }
    const [prefix, folder] = Object.entries(mounts).find(([p]) => url.pathname.startsWith(p)) ?? ['/', root];
    let file = path.join(folder, decodeURIComponent(url.pathname.slice(prefix.length - 1)));
    if (!file.startsWith(folder)) { res.writeHead(403); return res.end(); }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!fs.existsSync(file)) { res.writeHead(404); return res.end('not found'); }
    const stat = fs.statSync(file);
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': stat.size,
      'last-modified': stat.mtime.toUTCString(),
    });
    if (req.method === 'HEAD') return res.end();
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
