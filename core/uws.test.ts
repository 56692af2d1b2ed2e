import t from 'tap';
import { NativeServerUnavailableError } from './errors.js';
import { loadUws } from './uws.js';

t.test('loads the native uWebSockets.js binary for this platform and Node ABI', async (t) => {
  const loaded = loadUws();
  t.equal(loaded.implementation, 'native');
  t.ok(loaded.binary.endsWith(`uws_${process.platform}_${process.arch}_${process.versions.modules}.node`), `binary path ${loaded.binary}`);
  t.type(loaded.uws.App, 'function');
});

t.test('refuses the pure-JS fallback when the native binary cannot load', async (t) => {
  const target = { platform: process.platform, arch: process.arch, abi: '1' };
  t.throws(() => loadUws({ target }), NativeServerUnavailableError);
  try {
    loadUws({ target });
  } catch (error) {
    t.equal((error as NativeServerUnavailableError).code, 'ERR_UWS_NATIVE_UNAVAILABLE');
    t.match((error as Error).message, /UWS_ALLOW_JS_FALLBACK=true/);
  }
});

t.test('loads the pure-JS fallback only when explicitly allowed', async (t) => {
  const target = { platform: process.platform, arch: process.arch, abi: '1' };
  const loaded = loadUws({ target, allowJsFallback: true });
  t.equal(loaded.implementation, 'js-fallback');
  t.type(loaded.uws.App, 'function');
});
