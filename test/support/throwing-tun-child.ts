// Child process for the TUN test of a throwing frame handler: opens a TUN in the namespace given,
// throws from the handler on the first frame, and lets the process die as it will. The test
// reads how it died: a JS uncaught exception (stack on stderr, exit 1) and not a C++ abort.
import { openTun } from '../../src/stack/device/tun-device.js';

const [name = 'mpt-throw', netns] = process.argv.slice(2);
const dev = openTun({ name, ...(netns ? { netns } : {}) });
dev.onFrames(() => {
  throw new Error('handler failure for the test');
});
process.stdout.write('ready\n');
