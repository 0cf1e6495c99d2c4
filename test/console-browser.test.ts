/**
 * The web console in a real browser (Debian's chromium through playwright-core) against a
 * real server, real workers and real Redis: logging in with a token (a wrong one refused),
 * finding a conversation and seeing a retried task's attempts, a bulk replay whose dry run
 * shows the count before it acts (an expired task replayed only with a new expiry), a `read`
 * token refused the replay, and customer text holding `<script>` shown as text.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationStatus } from '../src/ops/status.js';
import { DeadLetterQueue } from '../src/redis/dead-letter-queue.js';
import { TOKENS } from './helpers/api-server.js';
import {
  launchChromium,
  logIn,
  RESEND_REFUSAL,
  startConsoleFixture,
  type ConsoleFixture,
} from './helpers/console-fixture.js';
import { bookedOutcome, resolvedOutcome } from './helpers/outcomes.js';
import { uniquePrefix } from './helpers/redis.js';
import { waitUntil } from './helpers/wait.js';

const HOUR = 3_600_000;
let fleet: ConsoleFixture;
let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  [fleet, browser] = await Promise.all([startConsoleFixture(uniquePrefix('console-browser')), launchChromium()]);
});

afterAll(async () => {
  await browser?.close();
  await fleet?.close();
});

/** An element's text with its whitespace collapsed, as a reader sees it. */
async function textOf(page: Page, selector: string): Promise<string> {
  return ((await page.textContent(selector)) ?? '').replace(/\s+/g, ' ').trim();
}

async function newPage(): Promise<Page> {
  const context = await browser.newContext();
  contexts.push(context);
  return context.newPage();
}

const settled = (conversationId: string, type: string) =>
  waitUntil(
    async () => (await conversationStatus(fleet.client, fleet.prefix, conversationId)).find((t) => t.type === type),
    (task) => task?.state === 'completed' || task?.state === 'dead_lettered',
    `${type} of ${conversationId} to finish`,
  );

describe('web console in a browser', () => {
  it('asks for a token, refuses a wrong one, and logs in with a read token', async () => {
    const page = await newPage();
    await page.goto(`${fleet.url}/console/dead-letters`);
    expect(new URL(page.url()).pathname).toBe('/console/login');
    await page.fill('input[name=token]', `${TOKENS.read}-wrong`);
    const [refused] = await Promise.all([
      page.waitForResponse((response) => response.request().method() === 'POST'),
      page.click('button[type=submit]'),
    ]);
    expect(refused.status()).toBe(401);
    expect(await textOf(page, '[data-testid=login-error]')).toContain('not one of the API keys');
    expect(await page.context().cookies()).toEqual([]);

    await page.fill('input[name=token]', TOKENS.read);
    await Promise.all([page.waitForURL(/\/console\/dead-letters$/), page.click('button[type=submit]')]);
    expect(await textOf(page, '[data-testid=role]')).toBe('read');
    const [cookie] = await page.context().cookies();
    expect(cookie).toMatchObject({ name: 'aftercall_console', httpOnly: true, sameSite: 'Strict', path: '/console' });
    expect(cookie!.value).not.toContain(TOKENS.read);

    await Promise.all([page.waitForURL(/\/console\/login$/), page.click('text=Log out')]);
    await page.goto(`${fleet.url}/console`);
    expect(new URL(page.url()).pathname).toBe('/console/login');
  });

  it("finds a conversation by id and shows a retried task's every attempt", async () => {
    const conversationId = 'console-retried 1/2';
    fleet.scripts.set(`${conversationId} /crm`, [{ status: 503 }, { status: 500 }, { status: 200 }]);
    await fleet.producer.conversationEnded(resolvedOutcome(conversationId, Date.now(), { ticket: undefined }));
    await settled(conversationId, 'update_crm');

    const page = await newPage();
    await logIn(page, fleet.url, 'read');
    await page.fill('input[name=id]', conversationId);
    await Promise.all([page.waitForURL(/\/console\/conversation\?id=/), page.click('text=Show timeline')]);
    expect(await textOf(page, '[data-testid=conversation-id]')).toBe(conversationId);
    const crm = page.locator('[data-testid=task][data-type=update_crm]');
    expect(await crm.locator('[data-testid=state]').textContent()).toBe('completed');
    const rows = crm.locator('[data-testid=attempt]');
    expect(await rows.count()).toBe(3);
    const cells = async (index: number) =>
      (await rows.nth(index).locator('td').allTextContents()).map((text) => text.replace(/\s+/g, ' ').trim());
    const [first, second, third] = [await cells(0), await cells(1), await cells(2)];
    expect([first[0], first[3], first[4], first[5], first[6]]).toEqual([
      '1',
      'webhook:update_crm',
      'retryable_error',
      '503',
      'webhook answered HTTP 503',
    ]);
    expect([second[0], second[4], second[5], second[6]]).toEqual([
      '2',
      'retryable_error',
      '500',
      'webhook answered HTTP 500',
    ]);
    expect([third[0], third[4], third[5]]).toEqual(['3', 'success', '200']);
    expect(first[1]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z \(.+ ago\)$/);

    await page.fill('input[name=id]', 'no-such-conversation');
    await Promise.all([page.waitForURL(/no-such-conversation/), page.click('text=Show timeline')]);
    expect(await textOf(page, '[data-testid=no-tasks]')).toContain('No task is known');
  });

  it('bulk replay: the dry run counts first, an expired task needs a new expiry, and a read token is refused', async () => {
    const now = Date.now();
    for (const id of ['console-bulk-a', 'console-bulk-b']) {
      fleet.scripts.set(`${id} /tickets`, [{ status: 422 }]);
      await fleet.producer.conversationEnded(resolvedOutcome(id, now));
    }
    // Ended 25 hours ago: its ticket update (expiry endedAt + 24 h) is dead-lettered as expired at once.
    await fleet.producer.conversationEnded(resolvedOutcome('console-bulk-old', now - 25 * HOUR));
    for (const id of ['console-bulk-a', 'console-bulk-b', 'console-bulk-old']) await settled(id, 'update_ticket');
    for (const id of ['console-bulk-a', 'console-bulk-b']) fleet.scripts.delete(`${id} /tickets`);

    // A read session sees the dead letters but is refused the replay, and nothing changes.
    const reader = await newPage();
    await logIn(reader, fleet.url, 'read');
    await reader.goto(`${fleet.url}/console/dead-letters?type=update_ticket`);
    expect(await reader.locator('[data-testid=dead-letter]').count()).toBe(3);
    const [refused] = await Promise.all([
      reader.waitForResponse((response) => response.url().endsWith('/console/dead-letters/confirm')),
      reader.click('[data-testid=bulk] >> text=Replay all…'),
    ]);
    expect(refused.status()).toBe(403);
    expect(await textOf(reader, '[data-testid=message]')).toMatch(/role read.*need a key with the role admin/s);
    const dlq = new DeadLetterQueue(fleet.client, fleet.prefix);
    expect((await dlq.list({ types: ['update_ticket'] })).length).toBe(3);

    const admin = await newPage();
    await logIn(admin, fleet.url, 'admin');
    await admin.goto(`${fleet.url}/console/dead-letters`);
    await admin.selectOption('select[name=type]', 'update_ticket');
    await Promise.all([admin.waitForURL(/type=update_ticket/), admin.click('text=Filter')]);
    expect(await admin.locator('[data-testid=dead-letter]').count()).toBe(3);
    await Promise.all([admin.waitForURL(/\/confirm$/), admin.click('[data-testid=bulk] >> text=Replay all…')]);
    expect(await textOf(admin, '[data-testid=dry-run]')).toBe(
      '3 tasks would be replayed, 1 expired (need a new expiry).',
    );
    // The dry run changed nothing.
    expect((await dlq.list({ types: ['update_ticket'] })).length).toBe(3);

    // Without a new expiry the expired one stays.
    await Promise.all([admin.waitForURL(/\/act$/), admin.click('text=Replay 3 tasks')]);
    expect(await textOf(admin, '[data-testid=result]')).toMatch(/Replayed 2 of 3 selected tasks; 1 not done/);
    expect(await textOf(admin, 'table')).toMatch(/expired at .*give it a new expiry/);
    for (const id of ['console-bulk-a', 'console-bulk-b']) {
      expect((await settled(id, 'update_ticket'))!.state).toBe('completed');
    }

    // Again, with a new expiry: the expired one goes out too.
    await admin.goto(`${fleet.url}/console/dead-letters?type=update_ticket`);
    await Promise.all([admin.waitForURL(/\/confirm$/), admin.click('[data-testid=bulk] >> text=Replay all…')]);
    expect(await textOf(admin, '[data-testid=dry-run]')).toBe(
      '1 task would be replayed, 1 expired (need a new expiry).',
    );
    await admin.fill('input[name=extend]', '2h');
    await Promise.all([admin.waitForURL(/\/act$/), admin.click('text=Replay 1 task')]);
    expect(await textOf(admin, '[data-testid=result]')).toMatch(/Replayed 1 of 1 selected task\./);
    const old = await settled('console-bulk-old', 'update_ticket');
    expect(old!.state).toBe('completed');
    expect(Date.parse(old!.expiresAt!)).toBeGreaterThan(Date.now() + HOUR);
    expect(await dlq.list({ types: ['update_ticket'] })).toEqual([]);
  });

  it('shows customer and provider text holding <script> as text, never as markup', async () => {
    const conversationId = '<script>window.__pwned = 1</script>';
    const outcome = bookedOutcome(conversationId, Date.now());
    outcome.customer.name = '<img src=x onerror="window.__pwned = 2">';
    await fleet.producer.conversationEnded(outcome);
    const email = await settled(conversationId, 'send_email');
    expect(email).toMatchObject({ state: 'dead_lettered', deadLetterReason: 'terminal' });

    const page = await newPage();
    await logIn(page, fleet.url, 'admin');
    const timeline = await page.goto(`${fleet.url}/console/conversation?id=${encodeURIComponent(conversationId)}`);
    const source = await timeline!.text();
    expect(source).not.toContain('<script>');
    expect(source).toContain('&lt;script&gt;window.__pwned = 1&lt;/script&gt;');
    expect(await textOf(page, '[data-testid=conversation-id]')).toBe(conversationId);
    const emailCard = page.locator('[data-testid=task][data-type=send_email]');
    expect(await emailCard.locator('.error-text').first().textContent()).toContain(RESEND_REFUSAL);

    const list = await page.goto(`${fleet.url}/console/dead-letters?type=send_email`);
    const listSource = await list!.text();
    expect(listSource).not.toMatch(/<script|<img/);
    const row = page.locator('[data-testid=dead-letter]', { hasText: conversationId });
    expect(await row.count()).toBe(1);
    await row.locator('summary').click();
    expect(await row.locator('pre').textContent()).toContain('<img src=x onerror=\\"window.__pwned = 2\\">');

    expect(await page.evaluate('typeof window.__pwned')).toBe('undefined');
    expect(await page.title()).not.toBe('pwned');
    expect(await page.locator('script, img').count()).toBe(0);
  });
});
