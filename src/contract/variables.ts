/**
 * Parsers of environment variables, as zod schemas from an optional string: the
 * configuration and each delivery provider's own variables use them, so every variable
 * says what it expected in one style. An empty value counts as unset.
 *
 * Durations accept `500ms`, `15s`, `30m`, `2h`, `1d`, or a number of milliseconds.
 */
import { z } from 'zod';
import { parseDuration } from './time.js';

export const durationVariable = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return fallback;
      const value = parseDuration(text);
      if (value === undefined) {
        ctx.addIssue({ code: 'custom', message: 'expected a duration such as 500ms, 15s, 30m, 2h or 1d' });
        return z.NEVER;
      }
      return value;
    });

export const integerVariable = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return fallback;
      const value = Number(text);
      if (!Number.isInteger(value) || value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `expected an integer from ${min} to ${max}` });
        return z.NEVER;
      }
      return value;
    });

export const numberVariable = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return fallback;
      const value = Number(text);
      if (!Number.isFinite(value) || value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `expected a number from ${min} to ${max}` });
        return z.NEVER;
      }
      return value;
    });

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];
export const flagVariable = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return fallback;
      const lower = text.toLowerCase();
      if (TRUE.includes(lower)) return true;
      if (FALSE.includes(lower)) return false;
      ctx.addIssue({ code: 'custom', message: 'expected true or false' });
      return z.NEVER;
    });

export const httpUrlVariable = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (text === undefined || text === '') return undefined;
    try {
      const url = new URL(text);
      if (url.protocol === 'http:' || url.protocol === 'https:') return text;
    } catch {
      // reported below
    }
    ctx.addIssue({ code: 'custom', message: 'expected an http:// or https:// URL' });
    return z.NEVER;
  });

/** Any text; unset when empty. */
export const textVariable = z
  .string()
  .optional()
  .transform((text) => text || undefined);

/** Text that must match `pattern` when set. */
export const patternVariable = (pattern: (text: string) => boolean, expected: string) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined || text === '') return undefined;
      if (pattern(text)) return text;
      ctx.addIssue({ code: 'custom', message: `expected ${expected}` });
      return z.NEVER;
    });
