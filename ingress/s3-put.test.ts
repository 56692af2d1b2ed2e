import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import t from 'tap';
import { loadConfig } from '../core/config.js';
import { signPut } from './s3-put.js';

function toBytes(data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** node:crypto behind the Checksum interface the SDK's signer expects. */
class NodeSha256 {
  readonly #hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.#hash.digest();
  }
  reset(): void {}
}

t.test('the lean PUT is signed exactly as the AWS SDK signs it (SigV4)', async (t) => {
  const config = loadConfig({
    S3_ENDPOINT: 'http://127.0.0.1:9000',
    S3_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    S3_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  }).s3;
  const body = Buffer.from('{"name":"Acme","permalink":"acme"}\n');
  const sha256 = createHash('sha256').update(body).digest('hex');
  const now = new Date('2026-11-27T12:34:56Z');
  const input = {
    key: "acme corp/files/2026/11/27/req-1 (copy)!'*.json",
    contentType: 'application/x-ndjson',
    metadata: { 'request-id': 'req-1', tenant: 'acme', 'original-filename': encodeURIComponent('cos de données.json') },
    sha256,
    length: body.length,
  };
  const ours = signPut(config, input, now);

  const signer = new SignatureV4({
    service: 's3',
    region: config.region,
    credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    sha256: NodeSha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const { authorization: _authorization, ...unsigned } = ours.headers;
  const signed = await signer.sign(
    { method: 'PUT', protocol: 'http:', hostname: '127.0.0.1', port: 9000, path: ours.path, query: {}, headers: unsigned, body },
    { signingDate: now },
  );
  t.equal(ours.headers.authorization, signed.headers.authorization);
  t.match(ours.path, /^\/imports\/acme%20corp\/files\/2026\/11\/27\/req-1%20%28copy%29%21%27%2A\.json$/);
});

t.test('virtual-hosted style puts the bucket in the host, not the path', async (t) => {
  const config = loadConfig({ S3_ENDPOINT: 'https://s3.example.com', S3_FORCE_PATH_STYLE: 'false' }).s3;
  const signed = signPut(config, { key: 'a/b.json', contentType: 'application/json', metadata: {}, sha256: 'e3b0', length: 0 }, new Date());
  t.equal(signed.headers.host, 'imports.s3.example.com');
  t.equal(signed.path, '/a/b.json');
});
