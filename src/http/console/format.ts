/** How times and durations read on the console: ISO-8601 (UTC) with a relative hint, as an on-call engineer reads them. */
import { type SafeHtml, html } from './html.js';

function relative(ms: number): string {
  const abs = Math.abs(ms);
  const text =
    abs < 1_000
      ? `${abs} ms`
      : abs < 60_000
        ? `${Math.round(abs / 1_000)} s`
        : abs < 3_600_000
          ? `${Math.round(abs / 60_000)} min`
          : abs < 172_800_000
            ? `${Math.round(abs / 3_600_000)} h`
            : `${Math.round(abs / 86_400_000)} d`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

/** An ISO time with how far it is from now; a dash for none. */
export function when(iso: string | null | undefined, now: number): SafeHtml {
  if (!iso) return html`<span class="muted">–</span>`;
  const at = Date.parse(iso);
  if (!Number.isFinite(at)) return html`<span class="mono">${iso}</span>`;
  return html`<span class="mono time" title="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</span>
    <span class="muted">(${relative(at - now)})</span>`;
}

/** An expiry: like `when`, marked when it has passed. */
export function expiry(iso: string | null | undefined, now: number): SafeHtml {
  if (!iso) return html`<span class="muted">–</span>`;
  const passed = Date.parse(iso) <= now;
  return html`${when(iso, now)}${passed && html` <span class="badge expired">expired</span>`}`;
}

export function durationMs(ms: number): string {
  return ms < 1_000 ? `${ms} ms` : `${(ms / 1_000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}
