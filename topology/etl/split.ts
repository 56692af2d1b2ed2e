/**
 * split: FileExtractSuccess → one FilePiece per record-aligned byte range the ingress planned
 * (one whole-file piece when it planned none). Piece i of a file goes to partition
 * (p + i) mod n of FilePiece, p being where the file's own key lands: the pieces of one file
 * spread evenly over the partitions, hence over the extract replicas, whatever their keys hash to.
 */
import { PipelineError } from '../../core/errors.js';
import { javaPartitionOf } from '../../core/murmur2.js';
import { fileKey } from '../../core/pipeline.js';
import type { FileExtractSuccess, FilePiece, FilePieceRange } from '../../schemas/index.js';
import type { Emit, InputMessage } from '../lib/types.js';

/** Checks that the ranges cover the file's records in order, without overlap; a plan that does not is poison. */
export function checkPieces(file: FileExtractSuccess, pieces: readonly FilePieceRange[]): void {
  let nextRecord = 0;
  let lastEnd = 0;
  for (const [index, piece] of pieces.entries()) {
    const start = Number(piece.byte_start);
    const end = Number(piece.byte_end);
    const problem =
      Number(piece.record_start) !== nextRecord
        ? `starts at record ${piece.record_start}, expected ${nextRecord}`
        : !(start >= lastEnd && end > start && end <= Number(file.size))
          ? `covers bytes [${start}, ${end}), which is not after byte ${lastEnd} and within the file's ${file.size}`
          : !(Number(piece.record_count) > 0)
            ? `holds ${piece.record_count} records`
            : undefined;
    if (problem !== undefined) throw new PipelineError('BAD_PIECE_PLAN', `piece ${index} of s3://${file.bucket}/${file.key} ${problem}`);
    nextRecord += Number(piece.record_count);
    lastEnd = end;
  }
  if (pieces.length > 0 && nextRecord !== Number(file.record_count)) {
    throw new PipelineError('BAD_PIECE_PLAN', `the pieces of s3://${file.bucket}/${file.key} hold ${nextRecord} records, the file ${file.record_count}`);
  }
}

/** `partitions`: how many partitions FilePiece has (read from the cluster at start-up). */
export function createSplit(partitions: () => number) {
  return function* split(input: InputMessage<FileExtractSuccess>): Iterable<Emit> {
    const file = input.value;
    const planned = file.format === 'object' ? [] : (file.pieces ?? []);
    checkPieces(file, planned);
    const ranges: Array<Pick<FilePiece, 'byte_start' | 'byte_end' | 'record_start' | 'record_count'>> =
      planned.length === 0
        ? [{ byte_start: null, byte_end: null, record_start: 0, record_count: Number(file.record_count) }]
        : planned.map((piece) => ({
            byte_start: Number(piece.byte_start),
            byte_end: Number(piece.byte_end),
            record_start: Number(piece.record_start),
            record_count: Number(piece.record_count),
          }));
    const count = partitions();
    const first = javaPartitionOf(fileKey(file.tenant, file.request_id), count);
    const receivedAt = Number(file.received_at);
    for (const [index, range] of ranges.entries()) {
      const piece: FilePiece = {
        request_id: file.request_id,
        tenant: file.tenant,
        bucket: file.bucket,
        key: file.key,
        format: file.format,
        received_at: receivedAt,
        accepted_at: file.accepted_at === null || file.accepted_at === undefined ? receivedAt : Number(file.accepted_at),
        piece_index: index,
        piece_count: ranges.length,
        ...range,
      };
      yield {
        to: 'pieces',
        key: `${fileKey(file.tenant, file.request_id)}/${index}`,
        value: piece,
        requestId: file.request_id,
        partition: (first + index) % count,
      };
    }
  };
}
