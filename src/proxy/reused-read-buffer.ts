/**
 * Reads a session's sockets into one reused buffer (net's `onread` option)
 * instead of a fresh Buffer per read sent through the Readable machinery
 * (push, buffer list, 'data' emit). On the proxy's hot path that is most of
 * what Node.js itself costs per chunk: measured with pgbench select-only
 * through a bare relay, 7.7 → 5.3 µs of user CPU per transaction.
 *
 * `onread` can only be given to a socket's constructor, and the sockets
 * here come already open, from net.Server and from the upstream handshake
 * (which reads the SSL answer and the first messages through 'data'). So
 * the open handle moves into a new net.Socket made with `onread`. That uses
 * net.Socket's `handle` option and `_handle` field, which Node.js does not
 * document (its own child_process handle passing relies on them); where
 * they are missing, or the socket is TLS, the socket stays as it is and is
 * read through 'data' events, with the same callback; `read_buffer:
 * per_read` in the configuration asks for that everywhere, should a Node.js
 * release change those internals in a way this check does not catch.
 *
 * The chunk given to `onChunk` is a view of the shared buffer and valid
 * during the call only. `onChunk` returns true when something still refers
 * to the chunk afterwards (a write the kernel did not take at once keeps
 * it until it completes): the next read then goes to a fresh buffer.
 */
import net from 'node:net';
import tls from 'node:tls';

/** The size libuv suggests for a stream read, as net's own reads use. */
const READ_BUFFER_SIZE = 64 * 1024;

export interface AdoptedSocket {
  socket: net.Socket;
  /** Bytes read before the move, to be handled before anything new. */
  pending: Buffer | null;
  /** False when the socket is read through 'data' events after all. */
  reused: boolean;
}

interface StreamHandle {
  reading: boolean;
  readStop(): number;
  useUserBuffer(buffer: Uint8Array): void;
}

/**
 * Moves `socket` (paused, not yet read by anyone else) to reused-buffer
 * reads delivered to `onChunk`. Reading starts at `resume()` on the
 * returned socket; the original socket must not be used again.
 */
export function readIntoReusedBuffer(socket: net.Socket, onChunk: (chunk: Buffer) => boolean, reuse = true): AdoptedSocket {
  const internals = socket as unknown as { _handle: StreamHandle | null; _readableState?: { ended?: boolean } };
  const handle = internals._handle;
  const movable =
    reuse &&
    !(socket instanceof tls.TLSSocket) &&
    handle !== null &&
    typeof handle.readStop === 'function' &&
    typeof handle.useUserBuffer === 'function' &&
    // Writes still queued, or an end of input already seen, belong to the old socket.
    socket.writableLength === 0 &&
    internals._readableState?.ended === false;
  if (!movable) {
    socket.on('data', (chunk: Buffer) => onChunk(chunk));
    return { socket, pending: null, reused: false };
  }

  handle.readStop();
  handle.reading = false;
  internals._handle = null;
  // What the old socket read ahead while paused; with no handle left, read() cannot start reading again.
  const pending = (socket.read() as Buffer | null) ?? null;
  // Releases the old socket's bookkeeping (net.Server counts it) without closing the handle.
  socket.destroy();

  let buffer = Buffer.allocUnsafe(READ_BUFFER_SIZE);
  let retained = false;
  const options = {
    handle,
    // A client's half-close must not end our sending side (see server.ts).
    allowHalfOpen: socket.allowHalfOpen,
    // Reading starts at resume(), once the caller is ready for chunks.
    pauseOnCreate: true,
    onread: {
      buffer: () => {
        if (retained) {
          buffer = Buffer.allocUnsafe(READ_BUFFER_SIZE);
          retained = false;
        }
        return buffer;
      },
      callback: (length: number, chunk: Uint8Array) => {
        if (onChunk((chunk as Buffer).subarray(0, length))) retained = true;
        // pause() in the tick of a resume() is undone by the resume Node defers
        // to the next tick; returning false stops reading again.
        return !adopted.isPaused();
      },
    },
  };
  const adopted: net.Socket = new net.Socket(options as net.SocketConstructorOpts);
  return { socket: adopted, pending: pending !== null && pending.length > 0 ? pending : null, reused: true };
}
