/** Codecs a producer of the pipeline may compress its batches with (KAFKA_COMPRESSION). */
export const compressionCodecs = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
export type CompressionCodec = (typeof compressionCodecs)[number];
