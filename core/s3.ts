import { S3Client } from '@aws-sdk/client-s3';
import type { S3Config } from './config.js';

/** A plain S3 client: endpoint, path-style addressing and credentials all come from config, so any S3 server works. */
export function createS3(config: S3Config): S3Client {
  return new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    // The SDK's default CRC32 of every upload and download runs in JavaScript (11% of the extract
    // stage's CPU in a profile); HTTP length checks stay, and the ingress stores a sha256 of
    // every file in its metadata. Operations that need a checksum (DeleteObjects) still get one.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Retries with backoff belong to the callers, which know whether a retry is safe.
    maxAttempts: 3,
    // The SDK's default agent stops at 50 sockets: fewer than the ingress's concurrent uploads.
    requestHandler: { httpAgent: { keepAlive: true, maxSockets: 256 } },
  });
}
