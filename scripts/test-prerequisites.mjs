#!/usr/bin/env node
// The programs the test suite runs besides Node and Redis, and the Debian package of each.
// `npm test` runs this first (the `pretest` script): when a command is missing on a Debian
// machine, it installs the package with apt-get (as root, or through sudo when that needs
// no password), running `apt-get update` at most once; anywhere else, or when it may not
// install, it stops with a message that names what to install. Nothing to do: no output.
//
// A new prerequisite is one line in PREREQUISITES.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** [command on PATH, Debian package that provides it, what needs it] */
const PREREQUISITES = [
  ['redis-server', 'redis-server', 'the Redis servers tests start (test/helpers/redis-server.ts, redis-topology.ts)'],
  ['redis-cli', 'redis-tools', '.ci/run, to check that Redis answers'],
  ['openssl', 'openssl', 'the TLS certificates of test/redis-security.test.ts'],
  ['promtool', 'prometheus', 'the alert-rule tests of test/deploy.test.ts'],
  ['prometheus', 'prometheus', 'test/prometheus-e2e.test.ts'],
  [
    'chromium',
    'chromium',
    'test/console-browser.test.ts browser tests (playwright-core drives it; it downloads no browser)',
  ],
];

const found = (command) =>
  (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir || '.', command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });

const missingNow = () => PREREQUISITES.filter(([command]) => !found(command));

function fail(missing, why) {
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  const width = Math.max(...missing.map(([command]) => command.length));
  process.stderr.write(
    [
      'test prerequisites: missing commands',
      ...missing.map(([command, pkg, use]) => `  ${command.padEnd(width)}  Debian package ${pkg}, for ${use}`),
      why,
      `Install: sudo apt-get install ${packages.join(' ')}   (elsewhere: what provides these commands)`,
      'then run `npm test` again.',
      '',
    ].join('\n'),
  );
  process.exit(1);
}

const missing = missingNow();
if (missing.length === 0) process.exit(0);

// As root, apt-get itself; otherwise sudo, if it runs without asking for a password.
const isRoot = process.getuid?.() === 0;
const sudo = !isRoot && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
if (!found('apt-get'))
  fail(missing, 'This is not a Debian-like machine (no apt-get), so they are not installed for you.');
if (!isRoot && !sudo) fail(missing, 'Installing them needs root (or sudo without a password).');

const aptGet = (args) => {
  process.stderr.write(`test prerequisites: ${isRoot ? '' : 'sudo '}apt-get ${args.join(' ')}\n`);
  // Waits for another apt-get (e.g. a second `npm test`) instead of failing on dpkg's lock.
  const aptArgs = ['-o', 'DPkg::Lock::Timeout=300', ...args];
  const [command, argv] = isRoot ? ['apt-get', aptArgs] : ['sudo', ['-n', 'apt-get', ...aptArgs]];
  const result = spawnSync(command, argv, {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
};

const packages = [...new Set(missing.map(([, pkg]) => pkg))];
process.stderr.write(
  `test prerequisites: ${missing.map(([command]) => command).join(', ')} missing; installing ${packages.join(' ')}\n`,
);
if (!aptGet(['update', '-qq'])) fail(missing, '`apt-get update` failed (see above).');
if (!aptGet(['install', '-y', '-qq', '--no-install-recommends', ...packages])) {
  fail(missing, '`apt-get install` failed (see above).');
}
const still = missingNow();
if (still.length) fail(still, 'apt-get installed the packages, but these commands are still not on PATH.');
process.stderr.write(`test prerequisites: installed ${packages.join(' ')}\n`);
