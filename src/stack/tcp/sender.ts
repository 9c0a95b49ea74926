/**
 * The send side of a connection. For now only the send buffer's old address: the ring moved to
 * send-buffer.ts, and other modules (src/stack/mptcp/connection.ts) still import it from here.
 */
export { SendBuffer } from './send-buffer.js';
