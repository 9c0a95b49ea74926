import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Frame } from '../src/stack/device/device.js';
import { TunDevice } from '../src/stack/device/tun-device.js';
import type { NativePoller, NativeTun } from '../src/stack/device/tun-native.js';

/**
 * A stand-in for the binding's Poller: the "kernel" takes `capacity` packets, then says EAGAIN
 * until the test makes room and fires writability. A real TUN almost never refuses a write, so
 * this is how the queueing and drain logic of TunDevice gets exercised.
 */
class FakeKernel {
  capacity = 0;
  readonly written: Array<{ hdr: number[]; data: number[] }> = [];
  events = { readable: false, writable: false };
  onWritable: () => void = () => assert.fail('the device registered no writable callback');

  native(): NativeTun {
    const kernel = this;
    class Poller implements NativePoller {
      constructor(
        _fd: number,
        _buf: ArrayBuffer,
        _lens: Uint32Array,
        _maxRead: number,
        _onRead: (n: number) => void,
        onWritable: () => void,
      ) {
        kernel.onWritable = onWritable;
      }
      setEvents(readable: boolean, writable: boolean): void {
        kernel.events = { readable, writable };
      }
      write(
        hdrs: Uint8Array | null,
        hdrSize: number,
        packets: readonly Uint8Array[],
        start: number,
        end: number,
      ) {
        let i = start;
        for (; i < end && kernel.capacity > 0; i++, kernel.capacity--) {
          const hdr = hdrs ? [...hdrs.subarray(i * hdrSize, (i + 1) * hdrSize)] : [];
          kernel.written.push({ hdr, data: [...packets[i]!] });
        }
        return i;
      }
      close(done?: () => void): void {
        done?.();
      }
    }
    return { open: () => assert.fail('not used'), Poller, batch: 64 };
  }
}

const frame = (n: number, len = 100): Frame => ({ data: new Uint8Array(len).fill(n) });

test('writes past EAGAIN are queued as copies, in order, and drain once the fd is writable', () => {
  const kernel = new FakeKernel();
  const dev = new TunDevice(-1, 'fake0', 1500, false, true, { native: kernel.native(), highWaterMark: 250 });
  let drains = 0;
  dev.onDrain(() => drains++);

  kernel.capacity = 2;
  const first = [frame(1), frame(2), frame(3)];
  assert.equal(dev.write(first), true, '100 bytes queued: below the high-water mark');
  assert.deepEqual(kernel.events, { readable: false, writable: true });
  first[2]!.data.fill(99); // the caller may reuse its buffers: the device kept a copy

  assert.equal(dev.write([frame(4), frame(5)]), false, '300 bytes queued: above the high-water mark');
  assert.equal(kernel.written.length, 2, 'nothing overtakes the queue');

  kernel.capacity = 2;
  kernel.onWritable();
  assert.equal(drains, 1, 'back below the high-water mark (100 bytes still queued): drain');
  assert.deepEqual(kernel.events, { readable: false, writable: true });
  kernel.capacity = 10;
  kernel.onWritable();
  assert.equal(drains, 1, 'one drain per write() that returned false');
  assert.deepEqual(
    kernel.written.map((w) => w.data[0]),
    [1, 2, 3, 4, 5],
  );
  assert.deepEqual(kernel.events, { readable: false, writable: false });
  assert.equal(dev.stats.txPackets, 5);
  assert.equal(dev.stats.txBytes, 500);
});

test('with offload, each queued packet keeps its virtio-net header', () => {
  const kernel = new FakeKernel();
  const dev = new TunDevice(-1, 'fake1', 1500, true, true, { native: kernel.native() });
  const gso = {
    needsCsum: true,
    dataValid: false,
    gsoType: 'tcpv4' as const,
    hdrLen: 52,
    gsoSize: 1448,
    csumStart: 20,
    csumOffset: 16,
  };
  kernel.capacity = 1;
  dev.write([{ data: new Uint8Array(3000), gso }, { data: new Uint8Array(40) }]);
  kernel.capacity = 1;
  kernel.onWritable();
  assert.deepEqual(
    kernel.written.map((w) => w.hdr),
    [
      [1, 1, 52, 0, 0xa8, 0x05, 20, 0, 16, 0],
      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ],
  );
});

test('a closed device refuses writes', async () => {
  const kernel = new FakeKernel();
  const dev = new TunDevice(-1, 'fake2', 1500, false, true, { native: kernel.native() });
  await dev.close();
  assert.throws(() => dev.write([frame(1)]), { name: 'DeviceClosedError' });
});
