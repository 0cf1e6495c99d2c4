/**
 * The signed webhook in the provider registry: any type's payload, to the URL in the
 * type's `<X>_WEBHOOK_URL`, signed with WEBHOOK_SECRET (Standard Webhooks).
 */
import { httpUrlVariable, patternVariable } from '../../../contract/variables.js';
import { allTaskDefinitions, taskDefinition, type TaskType } from '../../../tasks/catalog.js';
import type { DeliveryProvider, VariableValues } from '../../provider.js';
import { rateLimitVariable, type RateLimit } from '../../rate-limit.js';

/** `CRM_WEBHOOK_URL` -> `CRM_WEBHOOK_RATE_LIMIT`. */
const rateLimitVariableOf = (urlVariable: string) => urlVariable.replace(/_URL$/, '_RATE_LIMIT');
import { createWebhookDelivery, WEBHOOK_PROVIDER } from './webhook.js';

/** A Standard Webhooks secret as workers accept it: `whsec_` and at least 16 bytes in base64. */
export function isWebhookSecret(text: string): boolean {
  const key = text.startsWith('whsec_') ? text.slice('whsec_'.length) : '';
  return key !== '' && /^[A-Za-z0-9+/]+={0,2}$/.test(key) && Buffer.from(key, 'base64').length >= 16;
}

const SECRET = 'a Standard Webhooks secret: whsec_ followed by at least 16 bytes in base64';

const urlsOf = (values: VariableValues) =>
  Object.fromEntries(
    allTaskDefinitions().map((definition) => [
      definition.type,
      values[definition.webhookUrlVariable] as string | undefined,
    ]),
  ) as Record<TaskType, string | undefined>;

export const webhookProvider: DeliveryProvider = {
  name: WEBHOOK_PROVIDER,
  sends: 'payload',
  description: 'the task as JSON, signed per Standard Webhooks',
  variables: () => [
    {
      name: 'WEBHOOK_SECRET',
      schema: patternVariable(isWebhookSecret, SECRET),
      default: '(none)',
      description: 'Standard Webhooks signing secret (whsec_...); required when a webhook is used',
    },
    {
      name: 'WEBHOOK_PREVIOUS_SECRET',
      schema: patternVariable(isWebhookSecret, SECRET),
      default: '(none)',
      description: 'the secret being rotated out: while set, every webhook carries both signatures',
    },
    ...allTaskDefinitions().flatMap((definition) => [
      {
        name: definition.webhookUrlVariable,
        schema: httpUrlVariable,
        default: '(none)',
        description: `webhook URL of ${definition.type} deliveries`,
      },
      {
        name: rateLimitVariableOf(definition.webhookUrlVariable),
        schema: rateLimitVariable,
        default: '(none)',
        description: `fleet-wide limit of requests to ${definition.type}'s webhook, e.g. 20/s`,
      },
    ]),
  ],
  destination: (type) => `${WEBHOOK_PROVIDER}:${type}`,
  rateLimit: (values, type) =>
    values[rateLimitVariableOf(taskDefinition(type).webhookUrlVariable)] as RateLimit | undefined,
  configured: (values) => !!values.WEBHOOK_SECRET,
  requires: (values, type) => {
    const variable = taskDefinition(type).webhookUrlVariable;
    return [
      {
        variable,
        set: !!values[variable],
        why: `set ${variable}, or switch the type off with TASK_${type.toUpperCase()}_ENABLED=false`,
      },
      {
        variable: 'WEBHOOK_SECRET',
        set: !!values.WEBHOOK_SECRET,
        why: 'webhooks are signed (Standard Webhooks); expected whsec_ followed by a base64 key',
      },
    ];
  },
  create: ({ values, timeoutMs, observe }) =>
    createWebhookDelivery({
      urls: urlsOf(values),
      secret: values.WEBHOOK_SECRET as string,
      ...(typeof values.WEBHOOK_PREVIOUS_SECRET === 'string' && { previousSecret: values.WEBHOOK_PREVIOUS_SECRET }),
      timeoutMs,
      ...(observe && { observe }),
    }),
};
