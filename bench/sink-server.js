// The local receiver of `npm run bench:delivery`: a bare node:http server that answers every POST
// with 200 and a tiny body, and counts them. It is the same sink for the bare undici loop, for
// cohortcast and for graphile-worker, so their figures differ only by what happens before the POST.
//
// Usage: node bench/sink-server.js PORT   (listens on 127.0.0.1, prints "ready" when listening)
//
//   POST <any path but /_sink/…, /hang>  counted; answers 200 {"ok":true}
//   POST /hang                    never answered: held open until the client gives up (a receiver that
//                                 hangs until the sender's timeout); not counted as an arrival
//   GET  /count                   {"count": n, "first_ms": …, "last_ms": …, "hung": n, "hang_open": n}
//                                 (arrival times of the first and last counted POST, on the clock
//                                 performance.timeOrigin + performance.now(); POST /hang requests received
//                                 since the reset, and those held open right now)
//   POST /_sink/reset?record=1    zero the counts; with record=1, read "t" (the enqueue time, same clock)
//                                 and "i" (an index) from each body from now on and keep [i, arrival − t]
//                                 (every pair in it: a webhook message's form carries several users)
//   GET  /_sink/latencies         {"count": n, "unreadable": n, "samples": [[i, ms], …]} since the reset
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node bench/sink-server.js PORT');
  process.exit(2);
}

const now = () => performance.timeOrigin + performance.now();
const OK = Buffer.from('{"ok":true}');
const okHeaders = { 'content-type': 'application/json', 'content-length': String(OK.length) };

let count = 0;
let firstMs = null;
let lastMs = null;
let record = false;
let latencies = [];
let unreadable = 0;
let hung = 0;
let hangOpen = 0;
// "t":<number> and "i":<number> anywhere in the body; cheaper than JSON.parse, indifferent to key order.
const T_ALL = /"t":\s*(-?[0-9.eE+]+)/g;
const I_ALL = /"i":\s*([0-9]+)/g;

function json(res, status, value) {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(body.length) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/hang') {
    hung++;
    hangOpen++;
    req.resume();
    res.once('close', () => hangOpen--);
    return;
  }
  if (req.method === 'POST' && !req.url.startsWith('/_sink/')) {
    const chunks = record ? [] : undefined;
    req.on('data', (chunk) => chunks?.push(chunk));
    req.on('end', () => {
      const at = now();
      count++;
      if (firstMs === null) firstMs = at;
      lastMs = at;
      if (chunks) {
        let text = Buffer.concat(chunks).toString('utf8');
        // A webhook message is a form: its users (each may carry a "t" and an "i") are in `users`.
        if (text.startsWith('users=')) text = new URLSearchParams(text).get('users') ?? '';
        const ts = [...text.matchAll(T_ALL)].map((m) => Number(m[1]));
        const is = [...text.matchAll(I_ALL)].map((m) => Number(m[1]));
        if (ts.length > 0 && ts.length === is.length && ts.every(Number.isFinite)) ts.forEach((t, k) => latencies.push([is[k], at - t]));
        else unreadable++;
      }
      res.writeHead(200, okHeaders);
      res.end(OK);
    });
    return;
  }
  if (req.method === 'GET' && req.url === '/count') return json(res, 200, { count, first_ms: firstMs, last_ms: lastMs, hung, hang_open: hangOpen });
  if (req.method === 'POST' && req.url.startsWith('/_sink/reset')) {
    req.resume();
    count = 0;
    firstMs = lastMs = null;
    latencies = [];
    unreadable = 0;
    hung = 0;
    record = new URL(req.url, 'http://sink').searchParams.get('record') === '1';
    return json(res, 200, { ok: true, record });
  }
  if (req.method === 'GET' && req.url === '/_sink/latencies') return json(res, 200, { count: latencies.length, unreadable, samples: latencies });
  req.resume();
  json(res, 404, { error: 'not found' });
});
// Keep-alive connections are held for as long as any client wants them.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, '127.0.0.1', () => console.log('ready'));
