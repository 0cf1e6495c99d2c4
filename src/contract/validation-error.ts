/**
 * Validation errors at aftercall's boundaries (the outcome, the environment, job data
 * read back from Redis). Each one lists every offending field with what was expected,
 * and never the offending value: values may be customer data.
 */
import type { z } from 'zod';

export interface FieldIssue {
  /** Dotted path of the field, e.g. `customer.email` or `metadata.tags[2]`; `(root)` for the whole value. */
  path: string;
  /** What was expected there, in words. */
  message: string;
}

export class ValidationError extends Error {
  override readonly name: string = 'ValidationError';
  constructor(
    readonly subject: string,
    readonly issues: FieldIssue[],
  ) {
    super(`invalid ${subject}: ${issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`);
  }
}

/** Thrown by `conversationEnded` when the outcome breaks the contract; nothing reached Redis. */
export class OutcomeValidationError extends ValidationError {
  override readonly name = 'OutcomeValidationError';
  constructor(issues: FieldIssue[]) {
    super('conversation outcome', issues);
  }
}

/** A bad environment variable or a missing one the configuration needs; the path is the variable. */
export class ConfigError extends ValidationError {
  override readonly name = 'ConfigError';
  constructor(issues: FieldIssue[]) {
    super('configuration', issues);
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

/** Turns zod issues into field issues: one per field, unknown keys one each. */
export function toFieldIssues(issues: readonly z.core.$ZodIssue[]): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ path: formatPath([...issue.path, key]), message: 'unknown field (not part of the schema)' });
      }
      continue;
    }
    const missing = issue.code === 'invalid_type' && 'input' in issue && issue.input === undefined;
    out.push({ path: formatPath(issue.path), message: missing ? `required: ${issue.message}` : issue.message });
  }
  return out;
}
