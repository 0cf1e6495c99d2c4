/**
 * The console's html template escapes whatever it is given: a conversation id or an error
 * text holding `<script>` comes out as text, in text nodes and in attributes alike; only
 * markup the template made itself goes in as markup.
 */
import { describe, expect, it } from 'vitest';
import { escapeHtml, html, url } from '../src/http/console/html.js';

describe('html template', () => {
  it('renders a <script> in a conversation id or an error text inert', () => {
    const conversationId = '<script>alert("id")</script>';
    const error = `resend answered 422: "<script>document.title='x'</script>" & more`;
    const page = html`<h1>${conversationId}</h1><p class="error">${error}</p>`;
    expect(page.text).toBe(
      '<h1>&lt;script&gt;alert(&quot;id&quot;)&lt;/script&gt;</h1>' +
        '<p class="error">resend answered 422: &quot;&lt;script&gt;document.title=&#39;x&#39;&lt;/script&gt;&quot; &amp; more</p>',
    );
    expect(page.text).not.toMatch(/<script/i);
  });

  it('keeps a value inside its quoted attribute', () => {
    const id = '" onmouseover="alert(1)" x="';
    const markup = html`<input value="${id}"><a href="${url('/console/conversation', { id })}">x</a>`;
    expect(markup.text).toBe(
      '<input value="&quot; onmouseover=&quot;alert(1)&quot; x=&quot;">' +
        '<a href="/console/conversation?id=%22+onmouseover%3D%22alert%281%29%22+x%3D%22">x</a>',
    );
  });

  it('nests markup made by html, escapes every item of an array, and renders nothing for null, undefined and false', () => {
    const items = ['<b>one</b>', html`<b>two</b>`];
    const markup = html`<ul>${items.map((item) => html`<li>${item}</li>`)}</ul>${null}${undefined}${false}${0}`;
    expect(markup.text).toBe('<ul><li>&lt;b&gt;one&lt;/b&gt;</li><li><b>two</b></li></ul>0');
  });

  it('cannot be handed a look-alike object as markup', () => {
    const forged = { text: '<script>alert(1)</script>' } as unknown as string;
    expect(html`${forged}`.text).toBe('[object Object]');
    expect(escapeHtml(`&<>"'`)).toBe('&amp;&lt;&gt;&quot;&#39;');
  });
});
