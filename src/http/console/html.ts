/**
 * HTML built from templates that escape by default.
 *
 * Everything the console shows may have come from a customer or a voice agent: a
 * conversation id may hold any script, an error text quotes what a provider answered, a
 * payload is whatever the outcome carried. So there is one way to make markup, the `html`
 * tagged template, and every value interpolated into it is escaped (`& < > " '`), unless it
 * is itself markup made by `html` (a `SafeHtml`). Arrays are joined, each item escaped the
 * same way; `null`, `undefined` and `false` render as nothing, so `${cond && html`...`}` works.
 *
 * There is no escape hatch for strings: markup from anywhere else cannot be marked safe.
 * Attributes are always quoted in the templates, so an escaped value cannot leave its
 * attribute; URLs are built with `url()` (query values percent-encoded, then escaped).
 */

const brand: unique symbol = Symbol('SafeHtml');

/** Markup built by `html`: safe to interpolate into another template as is. */
export interface SafeHtml {
  readonly [brand]: true;
  readonly text: string;
}

export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for an HTML text node or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char]!);
}

function isSafe(value: unknown): value is SafeHtml {
  return typeof value === 'object' && value !== null && brand in value;
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (isSafe(value)) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

function safe(text: string): SafeHtml {
  return { [brand]: true, text };
}

/** The console's only way to make markup: every interpolated value is escaped unless it is SafeHtml. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let text = strings[0]!;
  values.forEach((value, index) => {
    text += render(value) + strings[index + 1]!;
  });
  return safe(text);
}

/** A path with its query string; values are percent-encoded (and escaped again when interpolated). */
export function url(path: string, query: Record<string, string | number | undefined | null> = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}
