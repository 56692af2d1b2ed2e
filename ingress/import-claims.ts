/**
 * Durable claims on `(tenant, X-Request-Id)`, so a client's retry imports nothing new whichever
 * ingress replica it reaches and after any restart. A claim is a small object in the imports
 * bucket (`_claims/<tenant>/<request_id>.json`: no tenant name starts with `_`, so it is never
 * under a tenant's own prefix) written with S3's conditional writes:
 * `If-None-Match: *` takes a free id, `If-Match: <etag>` replaces exactly the version read, so
 * two replicas racing for one id cannot both win.
 *
 * A claim is `in-flight` while its import runs (its owner renews the lease every third of it),
 * `done` with the first answer once the import's event is acknowledged, or `released` when the
 * import failed without a durable result. A claim whose lease ran out (its ingress died
 * mid-upload), a released one, or a done one older than the dedupe window is free again.
 */
import { createHash } from 'node:crypto';
import type { LeanS3Put } from './s3-put.js';

export interface ClaimRecord<T> {
  state: 'in-flight' | 'done' | 'released';
  /** Which ingress process holds or held it (host, pid, random part). */
  owner: string;
  /** Until when (epoch ms) an in-flight claim stands without its owner renewing it. */
  lease_until: number;
  /** When the import was accepted (epoch ms); only in `done`. */
  done_at?: number;
  /** The first answer; only in `done`. */
  result?: T;
}

/** The three conditional object operations a claim needs. */
export interface ClaimObjects {
  /** Writes `body` only if no object is at `key`: false if one is. */
  create(key: string, body: Buffer): Promise<{ etag: string } | false>;
  /** Replaces the object only if it is still version `etag`: false if it changed. */
  replace(key: string, body: Buffer, etag: string): Promise<{ etag: string } | false>;
  read(key: string): Promise<{ etag: string; body: Buffer } | undefined>;
}

export type ClaimOutcome<T> = { kind: 'claimed'; claim: HeldClaim<T> } | { kind: 'done'; result: T } | { kind: 'in-flight'; owner: string; leaseUntil: number };

export interface HeldClaim<T> {
  /** Records the first answer (after the import's event was acknowledged). */
  complete(result: T): Promise<void>;
  /** Frees the id for a retry (the import failed without a durable result). */
  release(): Promise<void>;
  /** Extends the lease (done every third of it while the import runs). */
  renew(): Promise<void>;
}

export interface ImportClaimsOptions {
  owner: string;
  /** How long an in-flight claim stands without renewal (INGRESS_CLAIM_LEASE_MS). */
  leaseMs: number;
  /** How long a done claim answers retries (INGRESS_DEDUPE_WINDOW_MS). */
  windowMs: number;
  now?: () => number;
  /** A renewal that failed (S3 unreachable, or the claim was taken after its lease ran out). */
  onRenewFailed?: (error: unknown) => void;
}

export function claimKey(tenant: string, requestId: string): string {
  return `_claims/${tenant}/${requestId}.json`;
}

/** How many times a claim is re-read when another replica changed it in between. */
const maxRaces = 5;

export class ImportClaims<T> {
  readonly #objects: ClaimObjects;
  readonly #options: ImportClaimsOptions;
  readonly #now: () => number;

  constructor(objects: ClaimObjects, options: ImportClaimsOptions) {
    this.#objects = objects;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async claim(tenant: string, requestId: string): Promise<ClaimOutcome<T>> {
    const key = claimKey(tenant, requestId);
    for (let race = 0; race < maxRaces; race++) {
      const created = await this.#objects.create(key, this.#inFlight());
      if (created !== false) return { kind: 'claimed', claim: this.#hold(key, created.etag) };
      const current = await this.#objects.read(key);
      if (current === undefined) continue;
      const record = parseRecord<T>(current.body);
      const now = this.#now();
      if (record?.state === 'done' && record.result !== undefined && (record.done_at ?? 0) + this.#options.windowMs > now) {
        return { kind: 'done', result: record.result };
      }
      if (record?.state === 'in-flight' && record.lease_until > now) {
        return { kind: 'in-flight', owner: record.owner, leaseUntil: record.lease_until };
      }
      // Released, expired, past the window, or unreadable: take it over, if nobody did first.
      const taken = await this.#objects.replace(key, this.#inFlight(), current.etag);
      if (taken !== false) return { kind: 'claimed', claim: this.#hold(key, taken.etag) };
    }
    throw new Error(`claim ${key} changed ${maxRaces} times while being taken`);
  }

  #inFlight(): Buffer {
    return encodeRecord({ state: 'in-flight', owner: this.#options.owner, lease_until: this.#now() + this.#options.leaseMs });
  }

  #hold(key: string, firstEtag: string): HeldClaim<T> {
    let etag = firstEtag;
    let finished = false;
    // One write at a time: a renewal and the final write must not race for the same version.
    let writing: Promise<unknown> = Promise.resolve();
    const write = (body: Buffer): Promise<void> => {
      const next = writing.then(async () => {
        const written = await this.#objects.replace(key, body, etag);
        if (written === false) throw new Error(`claim ${key} was taken by another ingress after its lease ran out`);
        etag = written.etag;
      });
      writing = next.catch(() => undefined);
      return next;
    };
    const renew = () => (finished ? Promise.resolve() : write(this.#inFlight()));
    const renewing = setInterval(
      () => {
        renew().catch((error: unknown) => this.#options.onRenewFailed?.(error));
      },
      Math.max(1, Math.floor(this.#options.leaseMs / 3)),
    );
    renewing.unref();
    const finish = (record: ClaimRecord<T>): Promise<void> => {
      finished = true;
      clearInterval(renewing);
      return write(encodeRecord(record));
    };
    const owner = this.#options.owner;
    return {
      complete: (result) => finish({ state: 'done', owner, lease_until: 0, done_at: this.#now(), result }),
      release: () => finish({ state: 'released', owner, lease_until: 0 }),
      renew,
    };
  }
}

function encodeRecord<T>(record: ClaimRecord<T>): Buffer {
  return Buffer.from(JSON.stringify(record), 'utf8');
}

function parseRecord<T>(body: Buffer): ClaimRecord<T> | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as ClaimRecord<T>;
    return typeof value === 'object' && value !== null && typeof value.state === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Claims as objects in the imports bucket, through the ingress's lean signed requests. */
export function s3ClaimObjects(s3: LeanS3Put): ClaimObjects {
  const put = async (key: string, body: Buffer, condition: { ifNoneMatch: '*' } | { ifMatch: string }) => {
    try {
      const sha256 = createHash('sha256').update(body).digest('hex');
      return await s3.put({ key, body, contentType: 'application/json', metadata: {}, sha256, ...condition });
    } catch (error) {
      // 412: the condition failed. 409: S3 saw a concurrent conditional write on the key.
      const status = (error as { status?: number }).status;
      if (status === 412 || status === 409) return false;
      throw error;
    }
  };
  return {
    create: (key, body) => put(key, body, { ifNoneMatch: '*' }),
    replace: (key, body, etag) => put(key, body, { ifMatch: etag }),
    read: (key) => s3.get(key),
  };
}
