import { randomBytes } from 'node:crypto';

/**
 * A UUIDv7 (RFC 9562): 48-bit millisecond timestamp, then random bits. Sortable by time,
 * so object keys, logs and events of one period sort together.
 */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Client-supplied ids end up in S3 keys, logs and headers: letters, digits, '-' and '_'
 * only (no dots, slashes or control characters), 8 to 128 of them.
 */
const requestIdPattern = /^[A-Za-z0-9_-]{8,128}$/;

export function isValidRequestId(value: string): boolean {
  return requestIdPattern.test(value);
}

/** Tenants are S3 prefixes and Kafka keys: `[a-z0-9][a-z0-9._-]{0,62}`, and never `.`/`..` segments. */
const tenantPattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function isValidTenant(value: string): boolean {
  return tenantPattern.test(value) && !value.includes('..');
}
