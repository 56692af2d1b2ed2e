/**
 * The record contract: checks one (normalised) company record against
 * schemas/company.schema.json and reports every violation at once.
 *
 * The schema is compiled once, when this module is loaded, by a single ajv instance
 * (draft 2020-12, strict mode, all errors, ajv-formats for "email" and "uri");
 * validateRecord() itself only runs the compiled function.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

/** One broken rule of the contract. */
export interface Violation {
  /** JSON Pointer (RFC 6901) to the offending value: '' for the record itself, '/offices/0/latitude', ... A missing required property is reported at its own path ('/permalink'). */
  path: string;
  /** The JSON Schema keyword that failed: 'type', 'minimum', 'pattern', 'format', 'required', 'anyOf', ... */
  keyword: string;
  /** Human-readable, names the constraint: 'must be <= 2100', 'must be integer or null', ... */
  message: string;
}

export type ValidationResult = { valid: true } | { valid: false; violations: Violation[] };

/** Where the schema lives; exported so other modules (e.g. a schema registry publisher) use the same file. */
export const companySchemaUrl = new URL('../../schemas/company.schema.json', import.meta.url);

/** The parsed schema (the contract's single source of truth). */
export const companySchema: Record<string, unknown> = JSON.parse(readFileSync(companySchemaUrl, 'utf8')) as Record<string, unknown>;

// ajv-formats is CommonJS: under NodeNext its default import is `module.exports`, whose
// `.default` is the plugin itself (the same function at run time).
const addFormats = addFormatsModule.default;

const ajv = new Ajv2020({
  allErrors: true,
  strict: true,
  // `"type": ["integer", "null"]` is how the contract says "absent value allowed".
  allowUnionTypes: true,
});
addFormats(ajv, ['email', 'uri']);

const validateCompiled = ajv.compile(companySchema);

const VALID: { valid: true } = Object.freeze({ valid: true as const });

/**
 * Checks a record (normalise MongoDB extended JSON first, see normalize.ts).
 * Never throws; never modifies or strips the record.
 */
export function validateRecord(record: unknown): ValidationResult {
  if (validateCompiled(record)) return VALID;
  return { valid: false, violations: toViolations(validateCompiled.errors ?? []) };
}

/** RFC 6901 escaping of one reference token. */
function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Turns ajv errors into violations. The errors of the branches of an `anyOf` are folded
 * into the one `anyOf` violation ("must be equal to \"\" or match format \"email\""), so
 * each broken rule gives one violation.
 */
function toViolations(errors: readonly ErrorObject[]): Violation[] {
  const combinators = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const branchOf = (e: ErrorObject): ErrorObject | undefined => combinators.find((c) => c !== e && e.schemaPath.startsWith(`${c.schemaPath}/`));

  const violations: Violation[] = [];
  for (const error of errors) {
    if (branchOf(error)) continue;
    if (error.keyword === 'required') {
      const missing = String((error.params as { missingProperty: string }).missingProperty);
      violations.push({
        path: `${error.instancePath}/${escapePointerToken(missing)}`,
        keyword: 'required',
        message: `must have required property ${JSON.stringify(missing)}`,
      });
      continue;
    }
    let phrases: string[];
    if (error.keyword === 'anyOf' || error.keyword === 'oneOf') {
      const branches = errors.filter((e) => branchOf(e) === error);
      phrases = branches.map(phrase);
      if (phrases.length === 0) phrases = [phrase(error)];
    } else {
      phrases = [phrase(error)];
    }
    violations.push({ path: error.instancePath, keyword: error.keyword, message: `must ${phrases.join(' or ')}` });
  }
  return violations;
}

/** The constraint of one error, as a phrase to follow "must". */
function phrase(error: ErrorObject): string {
  const p = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'type': {
      const types = Array.isArray(p.type) ? (p.type as unknown[]) : [p.type];
      return `be ${types.map(String).join(' or ')}`;
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `be ${String(p.comparison)} ${String(p.limit)}`;
    case 'minLength':
      return `have at least ${String(p.limit)} character${p.limit === 1 ? '' : 's'}`;
    case 'maxLength':
      return `have at most ${String(p.limit)} character${p.limit === 1 ? '' : 's'}`;
    case 'pattern':
      return `match the pattern /${String(p.pattern)}/`;
    case 'format':
      return `be a valid ${String(p.format)} (format "${String(p.format)}")`;
    case 'const':
      return `be equal to ${JSON.stringify(p.allowedValue)}`;
    case 'enum':
      return `be one of ${JSON.stringify(p.allowedValues)}`;
    default:
      return (error.message ?? `satisfy "${error.keyword}"`).replace(/^must /, '');
  }
}
