/**
 * Findings measured once (a CPU profile, a check by hand) that the reports quote as they are:
 * they live in bench/findings.md with their date, not in the report code.
 */
import { readFileSync } from 'node:fs';

const file = new URL('../findings.md', import.meta.url);

/** The paragraph under `## <id>` in a findings text, its lines joined by spaces. */
export function findingIn(text: string, id: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line.trim() === `## ${id}`);
  if (start === -1) throw new Error(`bench/findings.md has no "## ${id}"`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => line.startsWith('## '));
  const paragraph = (end === -1 ? rest : rest.slice(0, end)).map((line) => line.trim()).filter((line) => line !== '');
  if (paragraph.length === 0) throw new Error(`bench/findings.md: "## ${id}" is empty`);
  return paragraph.join(' ');
}

let text: string | undefined;

/** A finding of bench/findings.md. */
export function finding(id: string): string {
  text ??= readFileSync(file, 'utf8');
  return findingIn(text, id);
}
