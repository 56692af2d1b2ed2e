/**
 * Compatibility of each event schema under the pipeline's rule (core/event-codec.ts, FULL), as
 * the Schema Registry judges it (Apicurio's Confluent-compatible API): each schema is registered
 * under a subject of its own held to the rule, then a next version adding an optional field
 * with a default must be accepted, and one adding a field without a default, removing one that
 * has none, or changing a field's type refused. FileExtractSuccess's events across versions:
 * test/integration/schema-evolution.test.ts.
 */
import t, { type Test } from 'tap';
import { compatibilityRule } from '../../core/event-codec.js';
import { allTopics } from '../../core/pipeline.js';
import { eventSchemas, schemaOfTopic, type AvroSchema } from '../../schemas/index.js';
import { registryCall, uniqueName } from './helpers.js';

const call = registryCall;

const subjectPath = (subject: string) => encodeURIComponent(subject);

function register(subject: string, schema: AvroSchema) {
  return call('POST', `/subjects/${subjectPath(subject)}/versions`, { schemaType: 'AVRO', schema: JSON.stringify(schema) });
}

function checkAgainstLatest(subject: string, schema: AvroSchema) {
  return call('POST', `/compatibility/subjects/${subjectPath(subject)}/versions/latest`, { schemaType: 'AVRO', schema: JSON.stringify(schema) });
}

async function versionsOf(subject: string): Promise<number[]> {
  const { status, json } = await call('GET', `/subjects/${subjectPath(subject)}/versions`);
  if (status !== 200) throw new Error(`listing the versions of ${subject}: ${status} ${JSON.stringify(json)}`);
  return json as number[];
}

type Field = { name: string; type: unknown; default?: unknown; doc?: string };

function withFields(schema: AvroSchema, fields: Field[]): AvroSchema {
  return { ...schema, fields };
}

/** One subject per schema: CompanyRecord is carried by two topics, and is checked once. */
const schemaTopics = [...new Map(allTopics.map((topic) => [(eventSchemas as Record<string, string>)[topic.name]!, topic.name])).entries()];

async function proveCompatibility(t: Test, schemaName: string, topic: string): Promise<void> {
  const v1 = schemaOfTopic(topic);
  const fields = v1.fields as Field[];
  const subject = `${topic}-${uniqueName('compat')}-value`;
  t.teardown(async () => {
    // Soft delete first: the Confluent API deletes permanently only what is soft-deleted.
    await call('DELETE', `/subjects/${subjectPath(subject)}`);
    await call('DELETE', `/subjects/${subjectPath(subject)}?permanent=true`);
  });

  const first = await register(subject, v1);
  t.equal(first.status, 200, `${schemaName} registered under ${subject}`);
  const setting = await call('PUT', `/config/${subjectPath(subject)}`, { compatibility: compatibilityRule });
  t.equal(setting.status, 200, `compatibility ${compatibilityRule} set on the subject`);
  t.equal((await call('GET', `/config/${subjectPath(subject)}`)).json?.compatibilityLevel, compatibilityRule, 'and read back');

  const optionalAdded = withFields(v1, [
    ...fields,
    { name: 'compat_probe_note', type: ['null', 'string'], default: null, doc: 'A field of a next version, with a default.' },
  ]);
  const requiredAdded = withFields(v1, [...fields, { name: 'compat_probe_count', type: 'long', doc: 'A field of a next version, without a default.' }]);
  const removed = fields.find((field) => !('default' in field));
  if (removed === undefined) throw new Error(`${schemaName} has no field without a default to remove`);
  // BACKWARD alone accepts this one: a reader of the previous version would miss the field.
  const requiredRemoved = withFields(
    v1,
    fields.filter((field) => field !== removed),
  );
  const retyped = fields.find((field) => field.type === 'string');
  if (retyped === undefined) throw new Error(`${schemaName} has no string field to change the type of`);
  // A string read as a long: no Avro promotion allows it.
  const typeChanged = withFields(
    v1,
    fields.map((field) => (field === retyped ? { ...field, type: 'long' } : field)),
  );

  t.equal((await checkAgainstLatest(subject, optionalAdded)).json?.is_compatible, true, 'a new optional field with a default: compatible');
  t.equal((await checkAgainstLatest(subject, requiredAdded)).json?.is_compatible, false, 'a new field without a default: incompatible');
  t.equal((await checkAgainstLatest(subject, requiredRemoved)).json?.is_compatible, false, `${removed.name}, which has no default, removed: incompatible`);
  t.equal((await checkAgainstLatest(subject, typeChanged)).json?.is_compatible, false, `${retyped.name} changed from string to long: incompatible`);

  t.equal((await register(subject, requiredAdded)).status, 409, 'registering the new field without a default is refused');
  t.equal((await register(subject, requiredRemoved)).status, 409, `registering it without ${removed.name} is refused`);
  t.equal((await register(subject, typeChanged)).status, 409, `registering ${retyped.name} as a long is refused`);
  t.same(await versionsOf(subject), [1], 'the refused versions were not stored');
  const second = await register(subject, optionalAdded);
  t.equal(second.status, 200, 'registering the new optional field is accepted');
  t.not(second.json?.id, first.json?.id, 'as a schema of its own');
  t.same(await versionsOf(subject), [1, 2], 'as version 2');
}

for (const [schemaName, topic] of schemaTopics) {
  t.test(`${schemaName}: the registry accepts a ${compatibilityRule} compatible next version and refuses incompatible ones`, (t) =>
    proveCompatibility(t, schemaName, topic),
  );
}
