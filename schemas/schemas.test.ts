/**
 * What can be checked of the event schemas without a registry. Whether a next version is
 * BACKWARD compatible is the registry's verdict: test/integration/schema-compatibility.test.ts.
 */
import avro from 'avsc';
import t from 'tap';
import { allTopics } from '../core/pipeline.js';
import { eventSchemas, schemaOfTopic } from './index.js';

t.test('every pipeline topic declares an Avro schema', async (t) => {
  for (const topic of allTopics) t.ok((eventSchemas as Record<string, string>)[topic.name], topic.name);
  t.same(Object.keys(eventSchemas).sort(), allTopics.map((topic) => topic.name).sort(), 'a schema for each topic of the pipeline, and no other');
});

t.test('every schema parses, has a namespace, a doc, and a doc on every field', async (t) => {
  for (const topic of allTopics) {
    const schema = schemaOfTopic(topic.name);
    t.doesNotThrow(() => avro.Type.forSchema(schema as never), `${schema.name} parses`);
    t.match(schema.namespace, /^etl\./);
    t.ok(schema.doc.length > 20, `${schema.name} has a doc`);
    for (const field of schema.fields as Array<{ name: string; doc?: string }>) {
      t.ok(field.doc, `${schema.name}.${field.name} has a doc`);
    }
  }
});

t.test('every optional field (a union with null first) defaults to null', async (t) => {
  for (const topic of allTopics) {
    for (const field of schemaOfTopic(topic.name).fields as Array<{ name: string; type: unknown; default?: unknown }>) {
      if (Array.isArray(field.type) && field.type[0] === 'null') t.equal(field.default, null, `${topic.name}.${field.name}`);
    }
  }
});
