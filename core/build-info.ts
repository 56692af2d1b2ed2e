import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  commit: string;
  branch: string;
  build_time: string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/**
 * Build metadata for /liveness. `npm run build` (and the Dockerfiles, from build arguments)
 * writes build-info.json at build time — the design's ldflags. Run from source, the
 * environment (BUILD_VERSION, GIT_COMMIT, GIT_BRANCH, BUILD_TIME) or git fill it in.
 */
export function readBuildInfo(env: NodeJS.ProcessEnv = process.env): BuildInfo {
  const file = join(root, 'build-info.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as BuildInfo;
  const pkg = JSON.parse(readFileSync(join(root, existsSync(join(root, 'package.json')) ? 'package.json' : '../package.json'), 'utf8')) as {
    version: string;
  };
  return {
    version: env.BUILD_VERSION ?? pkg.version,
    commit: env.GIT_COMMIT ?? git(['rev-parse', 'HEAD']) ?? 'unknown',
    branch: env.GIT_BRANCH ?? git(['rev-parse', '--abbrev-ref', 'HEAD']) ?? 'unknown',
    build_time: env.BUILD_TIME ?? 'unbuilt (run from source)',
  };
}
