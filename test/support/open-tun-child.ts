// Child process for the TUN error tests: tries openTun and prints the outcome as one JSON line
// (the tests run it with fewer capabilities, or without /dev/net/tun).
import { MptunError } from '../../src/errors.js';
import { openTun } from '../../src/stack/device/tun-device.js';

const [name = 'mpt-child', netns] = process.argv.slice(2);
try {
  const dev = openTun({ name, ...(netns ? { netns } : {}) });
  await dev.close();
  process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
} catch (err) {
  if (!(err instanceof MptunError)) throw err;
  process.stdout.write(
    `${JSON.stringify({ ok: false, name: err.name, code: err.code, message: err.message })}\n`,
  );
}
