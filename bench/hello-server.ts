/**
 * A hello-world HTTP server for bench/ingest.ts, run in a process of its own so that the load
 * generator and the server never share an event loop:
 *
 *   node --import tsx bench/hello-server.ts uws|node <port>
 *
 * `uws` is uWebSockets.js loaded exactly as the ingress loads it (core/uws.ts, native binary
 * required); `node` is node:http, for the published uWS-vs-Node ratio. GET / answers "ok".
 * Prints "listening <port>" on stdout once it accepts connections; SIGTERM stops it.
 */
import { createServer } from 'node:http';
import { loadUws } from '../core/uws.js';

const [kind = 'uws', portText = '0'] = process.argv.slice(2);
const port = Number(portText);
const host = '127.0.0.1';

if (kind === 'uws') {
  const { uws, implementation } = loadUws();
  uws
    .App()
    .get('/', (res) => {
      res.end('ok');
    })
    .listen(host, port, (socket) => {
      if (!socket) {
        process.stderr.write(`cannot listen on ${host}:${port}\n`);
        process.exit(1);
      }
      process.stdout.write(`listening ${uws.us_socket_local_port(socket)} ${implementation}\n`);
    });
} else if (kind === 'node') {
  const server = createServer((_req, res) => {
    res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, host, () => {
    const address = server.address();
    process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : port} node-http\n`);
  });
} else {
  process.stderr.write(`usage: node --import tsx bench/hello-server.ts uws|node <port>\n`);
  process.exit(2);
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
