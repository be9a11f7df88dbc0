// The baseline of `npm run bench:ingest`: a bare Fastify 5 server whose POST /track reads the
// raw body and answers "1" -- the HTTP work of cohortcast's /track without decoding or storage.
// Usage: node bench/noop-server.js PORT   (listens on 127.0.0.1, prints "ready" when listening)
import Fastify from 'fastify';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node bench/noop-server.js PORT');
  process.exit(2);
}

// The same server-side timeouts cohortcast uses by default.
const app = Fastify({ logger: false, requestTimeout: 60_000, keepAliveTimeout: 72_000 });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 10 * 1024 * 1024 }, (_req, body, done) => done(null, body));
app.post('/track', async (request, reply) => {
  if (!Buffer.isBuffer(request.body)) return reply.code(400).type('text/plain; charset=utf-8').send('0');
  return reply.code(200).type('text/plain; charset=utf-8').send('1');
});

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await app.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());

await app.listen({ host: '127.0.0.1', port });
console.log('ready');
