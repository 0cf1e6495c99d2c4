/**
 * Messages to customers: what an e-mail or an SMS says. Each task type that reaches the
 * customer builds its own (in its file in src/tasks); this module has what they share.
 *
 * Everything a customer or a voice agent supplied (a name, an address, a service) is
 * escaped before it goes into HTML, so `<script>` arrives as text. Times are shown as
 * the wall-clock time of the offset the outcome carried (the customer's local time), with
 * the offset spelled out, since an offset alone does not name a time zone.
 */

export interface EmailMessage {
  to: string;
  subject: string;
  html: string;
  text: string;
}

export interface SmsMessage {
  /** E.164 phone number. */
  to: string;
  body: string;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]!);
}

/** `2026-11-30T09:30:00+01:00` -> `Monday 30 November 2026, 09:30 (UTC+01:00)`, in the customer's locale. */
export function formatAppointment(iso: string, locale = 'en-GB'): string {
  const match = /(Z|[+-]\d{2}:\d{2})$/.exec(iso);
  const offset = match?.[1] ?? 'Z';
  const offsetMinutes =
    offset === 'Z'
      ? 0
      : (offset.startsWith('-') ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  const wallClock = new Date(Date.parse(iso) + offsetMinutes * 60_000);
  let formatted: string;
  try {
    formatted = new Intl.DateTimeFormat(locale, {
      weekday: 'long',
      day: 'numeric',
      month: 'long',
      year: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      timeZone: 'UTC',
    }).format(wallClock);
  } catch {
    formatted = new Intl.DateTimeFormat('en-GB', {
      weekday: 'long',
      day: 'numeric',
      month: 'long',
      year: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      timeZone: 'UTC',
    }).format(wallClock);
  }
  return `${formatted} (UTC${offset === 'Z' ? '' : offset})`;
}

/** An appointment as the messages word it: what (the service), when, and ` at <address>` when known. */
export function describeAppointment(
  booking: { service?: string | undefined; startsAt: string; address?: string | undefined },
  locale?: string,
) {
  return {
    what: booking.service ?? 'your appointment',
    when: formatAppointment(booking.startsAt, locale),
    where: booking.address ? ` at ${booking.address}` : '',
  };
}

/** The start of a text message: `Hi <name>, ` when the customer's name is known. */
export function smsGreeting(name: string | undefined): string {
  return name ? `Hi ${name}, ` : '';
}

/** A plain e-mail: a greeting, paragraphs, a sign-off; HTML and text from the same words. */
export function composeEmail(
  to: string,
  subject: string,
  greetingName: string | undefined,
  paragraphs: string[],
): EmailMessage {
  const greeting = greetingName ? `Hello ${greetingName},` : 'Hello,';
  const text = [greeting, '', ...paragraphs.flatMap((paragraph) => [paragraph, '']), 'Thank you.'].join('\n');
  const html = [
    '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.5">',
    `<p>${escapeHtml(greeting)}</p>`,
    ...paragraphs.map((paragraph) => `<p>${escapeHtml(paragraph)}</p>`),
    '<p>Thank you.</p>',
    '</body></html>',
  ].join('\n');
  return { to, subject, html, text };
}

/** SMS bodies stay within two segments (306 GSM characters). */
export function composeSms(to: string, body: string): SmsMessage {
  return { to, body: body.length > 306 ? `${body.slice(0, 305)}…` : body };
}
