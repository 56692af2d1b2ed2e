import { createServer } from 'node:net';

/**
 * A port nothing listens on now, picked by the kernel (a random number could be an
 * ephemeral port some connection of the stack already uses).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
