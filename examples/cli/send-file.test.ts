/**
 * sendFile against in-process node:http servers on 127.0.0.1: an early refusal is read before
 * any body byte goes out; a server that sends no "100 Continue" still gets the body; a file
 * that cannot be read is told apart from a broken connection.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { sendFile } from './send-file.js';

const dir = mkdtempSync(join(tmpdir(), 'send-file-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'a.ndjson');
const content = Buffer.from('{"name":"a"}\n'.repeat(50_000));
writeFileSync(file, content);

async function serve(t: Test, server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/import/acme`;
}

/** The request's body; undefined when the client went away before its end. */
function bodyOf(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  return once(req, 'end').then(
    () => Buffer.concat(chunks),
    () => undefined,
  );
}

t.test('an answer sent instead of "100 Continue" is read; no body byte is sent', async (t) => {
  let bodyBytes = 0;
  const server = createServer();
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '7', connection: 'close' });
    res.end(JSON.stringify({ error: { code: 'TOO_MANY_UPLOADS', message: 'later' } }));
  });
  const url = await serve(t, server);
  let sent = 0;
  const result = await sendFile({
    url,
    path: file,
    size: content.length,
    headers: { 'x-request-id': 'req-000001' },
    onBytes: (bytes) => (sent += bytes),
    // Never the fallback here, however slow the machine: only the answer may stop the body.
    continueTimeoutMs: 600_000,
  });
  t.same(result, { kind: 'answer', status: 503, retryAfter: '7', body: { error: { code: 'TOO_MANY_UPLOADS', message: 'later' } } });
  t.equal(sent, 0, 'the file was not read');
  t.equal(bodyBytes, 0, 'the server got no body');
});

t.test('after "100 Continue" the whole file goes out, with its headers, and the answer is parsed', async (t) => {
  const server = createServer(async (req, res) => {
    const body = (await bodyOf(req))!;
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ size: body.length, same: body.equals(content), id: req.headers['x-request-id'], length: req.headers['content-length'] }));
  });
  const url = await serve(t, server);
  let sent = 0;
  const result = await sendFile({ url, path: file, size: content.length, headers: { 'x-request-id': 'req-000002' }, onBytes: (bytes) => (sent += bytes) });
  t.same(result, {
    kind: 'answer',
    status: 202,
    retryAfter: undefined,
    body: { size: content.length, same: true, id: 'req-000002', length: String(content.length) },
  });
  t.equal(sent, content.length, 'progress saw every byte');
});

t.test('a server that never sends "100 Continue" gets the body after continueTimeoutMs', async (t) => {
  const server = createServer(async (req, res) => {
    const body = (await bodyOf(req))!;
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ size: body.length }));
  });
  // Taking the event over means node:http neither answers 100 nor emits 'request' by itself.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => server.emit('request', req, res));
  const url = await serve(t, server);
  const result = await sendFile({ url, path: file, size: content.length, headers: {}, onBytes: () => undefined, continueTimeoutMs: 10 });
  t.match(result, { kind: 'answer', status: 202, body: { size: content.length } });
});

t.test('a non-JSON answer is kept as text; no server, or a file that cannot be read, are told apart', async (t) => {
  const server = createServer(async (req, res) => {
    if ((await bodyOf(req)) === undefined) return;
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<h1>Bad Gateway</h1>');
  });
  const url = await serve(t, server);
  t.same(await sendFile({ url, path: file, size: content.length, headers: {}, onBytes: () => undefined }), {
    kind: 'answer',
    status: 502,
    retryAfter: undefined,
    body: '<h1>Bad Gateway</h1>',
  });

  const unreadable = await sendFile({ url, path: dir, size: 10, headers: {}, onBytes: () => undefined });
  t.match(unreadable, { kind: 'file-unreadable', code: 'EISDIR' }, 'a folder is not a file');

  const closed = createServer();
  const closedUrl = await serve(t, closed);
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  t.match(await sendFile({ url: closedUrl, path: file, size: content.length, headers: {}, onBytes: () => undefined }), {
    kind: 'connection-failed',
    code: 'ECONNREFUSED',
  });
});
