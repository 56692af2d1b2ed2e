/**
 * Plans the pieces a file's extract is split into, from the record boundaries the scanner
 * reports while the body streams in: consecutive records are gathered until a piece spans at
 * least `targetBytes`, so each piece is a record-aligned byte range the extract stage can read
 * with a ranged GET and parse on its own. A file that fits in one piece gets no plan (the
 * extract reads it whole, as before pieces existed); so does an object body (one record).
 */
import type { BodyFormat } from './json-stream.js';
import type { FilePieceRange } from '../schemas/index.js';

export class PiecePlanner {
  readonly #targetBytes: number;
  readonly #pieces: FilePieceRange[] = [];
  #open: FilePieceRange | undefined;

  constructor(targetBytes: number) {
    if (!Number.isSafeInteger(targetBytes) || targetBytes < 1) throw new RangeError(`PiecePlanner: targetBytes must be a positive integer, got ${targetBytes}`);
    this.#targetBytes = targetBytes;
  }

  /** The scanner's onRecordBounds: record `index` lies in [start, end). */
  record(index: number, start: number, end: number): void {
    const open = this.#open;
    if (open === undefined) {
      this.#open = { byte_start: start, byte_end: end, record_start: index, record_count: 1 };
    } else {
      open.byte_end = end;
      open.record_count++;
    }
    if (this.#open!.byte_end - this.#open!.byte_start >= this.#targetBytes) {
      this.#pieces.push(this.#open!);
      this.#open = undefined;
    }
  }

  /** The plan: the pieces in file order, or none when the file is one piece. */
  finish(format: BodyFormat): FilePieceRange[] {
    if (this.#open !== undefined) this.#pieces.push(this.#open);
    this.#open = undefined;
    return format === 'object' || this.#pieces.length < 2 ? [] : this.#pieces;
  }
}
