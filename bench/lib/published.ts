/**
 * Figures other people published, that bench:ingest compares its own with (as ratios: other
 * hardware). /work/shared/FIELD-NOTES.md gathered them; each names where it was published.
 */
export const published = {
  /**
   * autocannon -c 100 -p 10 -d 40 against a hello-world server, req/s (avg): uws 20.41.0
   * 254,153.60 and node 20.11.1 142,995.21. Source: the fastify-uws benchmarks,
   * https://github.com/Vanilla-IceCream/fastify-uws/blob/main/benchmarks/README.md
   */
  uwsHello: 254_000,
  nodeHello: 143_000,
  /**
   * MinIO on localhost, 4 KiB PUTs per second with 1 and 2 client threads. Source: minio/minio#9758,
   * https://github.com/minio/minio/issues/9758
   */
  minio1: 756,
  minio2: 1_629,
} as const;
