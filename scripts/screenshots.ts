// `npm run screenshots`: the web console's main pages as PNG files in docs/images/, for the
// README. It starts what the browser tests start (test/helpers/console-fixture.ts: the HTTP
// API with the console, an in-process worker, a local webhook receiver and a Resend
// stand-in, on a key prefix of its own in Redis at REDIS_URL), produces a few conversations
// whose tasks retry, complete, expire and are refused, pauses one destination, then drives
// Debian's chromium through playwright-core (no browser download) over the pages. The
// prefix is removed afterwards. Not part of `npm test`.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/environment.js';
import { conversationStatus } from '../src/ops/status.js';
import { createDestinationOps } from '../src/ops/destinations.js';
import { launchChromium, logIn, startConsoleFixture } from '../test/helpers/console-fixture.js';
import { bookedOutcome, resolvedOutcome } from '../test/helpers/outcomes.js';
import { testEnv, uniquePrefix } from '../test/helpers/redis.js';
import { waitUntil } from '../test/helpers/wait.js';

const HOUR = 3_600_000;
const out = fileURLToPath(new URL('../docs/images/', import.meta.url));
mkdirSync(out, { recursive: true });

const fleet = await startConsoleFixture(uniquePrefix('screenshots'), {
  resendRefusal: 'Invalid `to` field. The email address needs to follow the `email@example.com` format.',
});
const browser = await launchChromium();
try {
  const now = Date.now();
  const featured = 'call-2026-12-01-0042';
  fleet.scripts.set(`${featured} /crm`, [{ status: 503 }, { status: 500 }, { status: 200 }]);
  fleet.scripts.set(`${featured} /tickets`, [{ status: 502 }, { status: 422 }]);
  fleet.scripts.set('call-2026-12-01-0051 /crm', [{ status: 502 }]);
  const outcomes = [
    resolvedOutcome(featured, now, { ticket: { id: 'T-4711', status: 'solved' } }),
    resolvedOutcome('call-2026-12-01-0051', now, { ticket: undefined }),
    bookedOutcome('call-2026-12-01-0047', now, { surveyOptIn: false }),
    resolvedOutcome('call-2026-11-30-0913', now - 25 * HOUR),
    resolvedOutcome('retell:call_8f2c41d0a7', now - 26 * HOUR),
  ];
  for (const outcome of outcomes) await fleet.producer.conversationEnded(outcome);
  const settled = (id: string, type: string) =>
    waitUntil(
      async () => (await conversationStatus(fleet.client, fleet.prefix, id)).find((task) => task.type === type),
      (task) => task?.state === 'completed' || task?.state === 'dead_lettered',
      `${type} of ${id}`,
      60_000,
    );
  await settled(featured, 'update_crm');
  await settled(featured, 'update_ticket');
  await settled('call-2026-12-01-0051', 'update_crm');
  await settled('call-2026-12-01-0047', 'send_email');

  const ops = createDestinationOps({
    client: fleet.client,
    config: loadConfig(testEnv(fleet.prefix, fleet.receiver.url)),
  });
  await ops.open('webhook:update_ticket', { forMs: 15 * 60_000, reason: 'ticket system maintenance (INC-2211)' });

  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  await logIn(page, fleet.url, 'admin');
  const shoot = async (path: string, file: string) => {
    await page.goto(`${fleet.url}${path}`);
    await page.screenshot({ path: `${out}${file}`, fullPage: true });
    process.stdout.write(`docs/images/${file}\n`);
  };
  await shoot(`/console/conversation?id=${encodeURIComponent(featured)}`, 'console-timeline.png');
  await shoot('/console/dead-letters', 'console-dead-letters.png');
  await page.goto(`${fleet.url}/console/dead-letters?type=update_crm`);
  await Promise.all([page.waitForURL(/\/confirm$/), page.click('[data-testid=bulk] >> text=Replay all…')]);
  await page.screenshot({ path: `${out}console-replay-dry-run.png`, fullPage: true });
  process.stdout.write('docs/images/console-replay-dry-run.png\n');
  await shoot('/console/destinations', 'console-destinations.png');
  await shoot('/console/queue-depths', 'console-queue-depths.png');
} finally {
  await browser.close();
  await fleet.close();
}
