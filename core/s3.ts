import { S3Client } from '@aws-sdk/client-s3';
import type { S3Config } from './config.js';

/** A plain S3 client: endpoint, path-style addressing and credentials all come from config, so any S3 server works. */
export function createS3(config: S3Config): S3Client {
  return new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    // Retries with backoff belong to the callers, which know whether a retry is safe.
    maxAttempts: 3,
    // The SDK's default agent stops at 50 sockets: fewer than the ingress's concurrent uploads.
    requestHandler: { httpAgent: { keepAlive: true, maxSockets: 256 } },
  });
}
