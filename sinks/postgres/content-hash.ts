/**
 * The content hash of a company copy: sha256 over the canonical JSON of the rows the sink writes
 * for it (the company's business columns with its whole document, its offices and funding
 * rounds), without the source_* columns that say which import the copy came from. Two copies
 * with the same hash leave the same data in the tables, so the writer skips the second one
 * (`unchanged`). The rows are hashed rather than the document alone so that a change of how the
 * sink maps a document to columns also changes the hash, and a replay then rewrites the rows.
 */
import { createHash } from 'node:crypto';

/**
 * Canonical JSON: object keys sorted (by UTF-16 code units), no whitespace, undefined members
 * left out as JSON.stringify does; arrays keep their order, which is the child rows' position.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((item: unknown) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const object = value as Record<string, unknown>;
  const members: string[] = [];
  for (const key of Object.keys(object).sort()) {
    if (object[key] === undefined) continue;
    members.push(`${JSON.stringify(key)}:${canonicalJson(object[key])}`);
  }
  return `{${members.join(',')}}`;
}

/** Bumped when what is hashed changes, so every stored row counts as updated once. */
const HASH_FORMAT = 1;

/** The hex sha256 of a copy's rows, as contentHash() computes it for the companies.content_hash column. */
export function contentHash(rows: { company: Record<string, unknown>; document: unknown; offices: readonly object[]; rounds: readonly object[] }): string {
  const text = canonicalJson({ format: HASH_FORMAT, company: rows.company, document: rows.document, offices: rows.offices, rounds: rows.rounds });
  return createHash('sha256').update(text).digest('hex');
}
