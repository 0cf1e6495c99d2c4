/**
 * The webhook adapter signs with node:crypto's HMAC rather than the standardwebhooks
 * package's JavaScript SHA-256: the signature must be the package's own, byte for byte,
 * and its verifier must accept it.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { webhookSigner } from '../src/delivery/providers/webhook/webhook.js';

const secrets = [
  `whsec_${randomBytes(24).toString('base64')}`,
  `whsec_${randomBytes(32).toString('base64')}`,
  // without the prefix, as the package also accepts
  randomBytes(32).toString('base64'),
];
const bodies = [
  '{}',
  JSON.stringify({ payload: { name: 'Zoë Ñúñez', note: 'réservé ✓ 日本語 🎉' } }),
  JSON.stringify({ text: 'x'.repeat(10_000) }),
  '',
];
const ids = ['conv-1:send_email', 'conv%20with%20spaces:update_crm', 'a'];
const moments = [new Date('2026-12-01T18:00:00.999Z'), new Date(0), new Date('2031-01-01T00:00:00Z')];

describe('webhook signature', () => {
  it("is the standardwebhooks package's own signature for every input", () => {
    let compared = 0;
    for (const secret of secrets) {
      const ours = webhookSigner(secret);
      const theirs = new Webhook(secret);
      for (const body of bodies) {
        for (const id of ids) {
          for (const at of moments) {
            expect(ours(id, at, body)).toBe(theirs.sign(id, at, body));
            compared += 1;
          }
        }
      }
    }
    expect(compared).toBe(secrets.length * bodies.length * ids.length * moments.length);
  });

  it("is accepted by the package's verifier, and refused under another secret", () => {
    const secret = secrets[0]!;
    const body = bodies[1]!;
    const at = new Date();
    const headers = {
      'webhook-id': ids[0]!,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': webhookSigner(secret)(ids[0]!, at, body),
    };
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(secrets[1]!).verify(body, headers)).toThrow(/No matching signature/);
  });

  it('refuses a secret the package refuses', () => {
    expect(() => webhookSigner('whsec_')).toThrow();
    expect(() => webhookSigner('whsec_not base64!')).toThrow();
  });
});
