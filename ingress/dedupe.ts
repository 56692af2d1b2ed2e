/**
 * Remembers, per tenant and request id, the answer of an import for a window, so a client
 * retrying with the same X-Request-Id gets the first result instead of a second import.
 * A retry that arrives while the first attempt is still running is told so (409).
 */
export type DedupeEntry<T> = { state: 'in-flight' } | { state: 'done'; result: T };

export class RequestDeduplicator<T> {
  readonly #entries = new Map<string, { entry: DedupeEntry<T>; expiresAt: number }>();
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(windowMs: number, now: () => number = Date.now) {
    this.#windowMs = windowMs;
    this.#now = now;
  }

  /** Claims the id for a new import, or returns what is known of an earlier one. */
  claim(tenant: string, requestId: string): DedupeEntry<T> | undefined {
    this.#sweep();
    const key = `${tenant}\u0000${requestId}`;
    const known = this.#entries.get(key);
    if (known !== undefined) return known.entry;
    this.#entries.set(key, { entry: { state: 'in-flight' }, expiresAt: Number.POSITIVE_INFINITY });
    return undefined;
  }

  complete(tenant: string, requestId: string, result: T): void {
    this.#entries.set(`${tenant}\u0000${requestId}`, {
      entry: { state: 'done', result },
      expiresAt: this.#now() + this.#windowMs,
    });
  }

  /** The import failed without a durable result: a retry must be allowed to try again. */
  release(tenant: string, requestId: string): void {
    this.#entries.delete(`${tenant}\u0000${requestId}`);
  }

  get size(): number {
    return this.#entries.size;
  }

  #sweep(): void {
    const now = this.#now();
    // Map iteration is in insertion order; completed entries expire roughly in that order.
    for (const [key, value] of this.#entries) {
      if (value.expiresAt > now) {
        if (value.expiresAt !== Number.POSITIVE_INFINITY) break;
        continue;
      }
      this.#entries.delete(key);
    }
  }
}
