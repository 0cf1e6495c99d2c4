/**
 * The sandbox's own endpoints, under `/_sandbox/`, for tests, demos and people with curl:
 *
 *   GET  /_sandbox/health                      200 { ok: true }
 *   GET  /_sandbox/faults                      the fault configuration in force
 *   PUT  /_sandbox/faults                      merge a JSON change into it (any subset of
 *                                              fields, `latencyMs` partially too); 400
 *                                              naming each invalid field
 *   POST /_sandbox/reset                       forget deliveries, idempotency memory and
 *                                              counters (the faults stay)
 *   GET  /_sandbox/deliveries[?provider=P]     { deliveries, rejected, stats }; P is resend,
 *                                              twilio or webhook; `rejected` lists the
 *                                              requests refused over a limit, during an
 *                                              outage or by a drawn fault, with their time
 *   GET  /_sandbox/stats[?destination=D]       traffic per destination (traffic.ts):
 *        [&windowMs=N][&from=ISO]              requests, 2xx, 429, 4xx, 5xx, per second,
 *                                              and the most in one second and in any
 *                                              window of N ms (default: the limit's)
 *
 * Limits and outages are part of the faults: `PUT /_sandbox/faults` with
 * `{ "limits": { "resend": 3, "webhook:update_crm": { "limit": 100, "windowMs": 60000 } } }`
 * or `{ "outages": { "resend": { "durationMs": 25000 }, "twilio": {} , "webhook:update_crm": null } }`
 * (faults.ts), and `{ "gone": ["webhook:update_crm"] }` for a receiver answering 410.
 * No latency, faults, limits or outages apply here.
 */
import { z } from 'zod';
import { toFieldIssues, ValidationError } from '../../src/contract/validation-error.js';
import {
  DELIVERY_PROVIDERS,
  type Delivery,
  type DeliveryProvider,
  type Rejection,
  type SandboxStats,
} from './delivery-log.js';
import { DESTINATION_EXPECTED, DESTINATION_NAME } from './destinations.js';
import type { FaultChange, FaultConfig } from './faults.js';
import { jsonAnswer, type Answer, type SandboxRequest } from './http.js';
import type { TrafficQuery, TrafficReport } from './traffic.js';

export const CONTROL_PREFIX = '/_sandbox/';

export interface ControlTarget {
  faults(): FaultConfig;
  setFaults(change: FaultChange): FaultConfig;
  reset(): void;
  deliveries(filter?: { provider?: DeliveryProvider }): Delivery[];
  rejections(filter?: { provider?: DeliveryProvider }): Rejection[];
  stats(): SandboxStats;
  traffic(query?: TrafficQuery): TrafficReport;
}

const deliveriesQuery = z.strictObject({
  provider: z.enum(DELIVERY_PROVIDERS, `expected one of ${DELIVERY_PROVIDERS.join(', ')}`).optional(),
});

const statsQuery = z.strictObject({
  destination: z.string().regex(DESTINATION_NAME, DESTINATION_EXPECTED).optional(),
  windowMs: z
    .string()
    .regex(/^\d+$/, 'expected whole milliseconds from 1 to 86400000')
    .transform(Number)
    .pipe(z.number().min(1, 'expected at least 1 ms').max(86_400_000, 'expected at most 86400000 ms (1 day)'))
    .optional(),
  from: z.iso
    .datetime({ offset: true, error: 'expected an ISO-8601 date-time with offset' })
    .transform((text) => Date.parse(text))
    .optional(),
});

const methodNotAllowed = (allowed: string): Answer =>
  jsonAnswer(405, { error: `method not allowed; use ${allowed}` }, { allow: allowed });

const invalid = (error: ValidationError): Answer => jsonAnswer(400, { error: error.message, issues: error.issues });

export function handleControl(request: SandboxRequest, target: ControlTarget): Answer {
  const route = request.path.slice(CONTROL_PREFIX.length);
  switch (route) {
    case 'health':
      return request.method === 'GET' ? jsonAnswer(200, { ok: true }) : methodNotAllowed('GET');

    case 'faults': {
      if (request.method === 'GET') return jsonAnswer(200, target.faults());
      if (request.method !== 'PUT') return methodNotAllowed('GET, PUT');
      let change: unknown;
      try {
        change = JSON.parse(request.rawBody.toString('utf8'));
      } catch {
        return jsonAnswer(400, {
          error: 'the body is not JSON',
          issues: [{ path: '(root)', message: 'expected a JSON object of fault settings' }],
        });
      }
      try {
        return jsonAnswer(200, target.setFaults(change as FaultChange));
      } catch (error) {
        if (error instanceof ValidationError) return invalid(error);
        throw error;
      }
    }

    case 'reset':
      if (request.method !== 'POST') return methodNotAllowed('POST');
      target.reset();
      return jsonAnswer(200, { ok: true });

    case 'deliveries': {
      if (request.method !== 'GET') return methodNotAllowed('GET');
      const parsed = deliveriesQuery.safeParse(Object.fromEntries(request.query));
      if (!parsed.success) return invalid(new ValidationError('deliveries query', toFieldIssues(parsed.error.issues)));
      const filter = parsed.data.provider ? { provider: parsed.data.provider } : {};
      return jsonAnswer(200, {
        deliveries: target.deliveries(filter),
        rejected: target.rejections(filter),
        stats: target.stats(),
      });
    }

    case 'stats': {
      if (request.method !== 'GET') return methodNotAllowed('GET');
      const parsed = statsQuery.safeParse(Object.fromEntries(request.query));
      if (!parsed.success) return invalid(new ValidationError('stats query', toFieldIssues(parsed.error.issues)));
      const { destination, windowMs, from } = parsed.data;
      return jsonAnswer(
        200,
        target.traffic({
          ...(destination !== undefined && { destination }),
          ...(windowMs !== undefined && { windowMs }),
          ...(from !== undefined && { from }),
        }),
      );
    }

    default:
      return jsonAnswer(404, { error: `no such sandbox endpoint: ${request.path}` });
  }
}
