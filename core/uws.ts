import { createRequire } from 'node:module';
import { NativeServerUnavailableError } from './errors.js';

type Uws = typeof import('uWebSockets.js');

export interface LoadedUws {
  uws: Uws;
  /** 'native' when the compiled µWS binary loaded; 'js-fallback' for the slow pure-JS server. */
  implementation: 'native' | 'js-fallback';
  /** Path of the module that was loaded, for /liveness and start-up logs. */
  binary: string;
}

const require = createRequire(import.meta.url);

/**
 * Loads uWebSockets.js, insisting on its native binary. The npm build we use
 * (@trufflesuite/uws-js-unofficial) silently falls back to a much slower pure-JS server
 * when its binary does not match the platform or Node ABI; a service that then meets its
 * throughput only on paper is worse than one that refuses to start. Set
 * `allowJsFallback` (UWS_ALLOW_JS_FALLBACK=true) to accept the fallback knowingly.
 */
export function loadUws(
  options: {
    allowJsFallback?: boolean;
    /** The binary's platform, arch and Node ABI: the running process's unless told otherwise. */
    target?: { platform: string; arch: string; abi: string };
  } = {},
): LoadedUws {
  const { allowJsFallback = false, target = { platform: process.platform, arch: process.arch, abi: process.versions.modules } } = options;
  const packageDir = require.resolve('uWebSockets.js/package.json').replace(/package\.json$/, '');
  const binary = `${packageDir}binaries/uws_${target.platform}_${target.arch}_${target.abi}.node`;
  try {
    return { uws: require(binary) as Uws, implementation: 'native', binary };
  } catch (error) {
    if (!allowJsFallback) {
      throw new NativeServerUnavailableError(
        `uWebSockets.js native binary did not load (${target.platform}/${target.arch}, ` +
          `Node ABI ${target.abi}): ${(error as Error).message}. ` +
          'Refusing to start on the slow pure-JS fallback; set UWS_ALLOW_JS_FALLBACK=true to allow it.',
        error,
      );
    }
    const fallback = `${packageDir}dist/index.js`;
    return { uws: require(fallback) as Uws, implementation: 'js-fallback', binary: fallback };
  }
}
