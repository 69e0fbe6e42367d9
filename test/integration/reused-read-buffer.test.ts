import net from 'node:net';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { readIntoReusedBuffer } from '../../src/proxy/reused-read-buffer.js';
import { eventually } from '../helpers/proxy.js';

/** A connected pair of plain TCP sockets; the accepted side starts paused, as txproxy's server makes it. */
async function socketPair(t: Test): Promise<{ accepted: net.Socket; peer: net.Socket }> {
  const server = net.createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepting = once(server, 'connection');
  const peer = net.connect(port, '127.0.0.1');
  const [accepted] = (await accepting) as [net.Socket];
  await once(peer, 'connect');
  t.teardown(() => {
    peer.destroy();
    accepted.destroy();
    server.close();
  });
  return { accepted, peer };
}

/** Collects chunks (copied: the views are only valid during the callback) until `bytes` have come. */
function collector(bytes: number) {
  const copies: Buffer[] = [];
  let received = 0;
  let resolve: () => void = () => undefined;
  const done = new Promise<void>((r) => (resolve = r));
  return {
    copies,
    done,
    onChunk(chunk: Buffer): boolean {
      copies.push(Buffer.from(chunk));
      received += chunk.length;
      if (received >= bytes) resolve();
      return false;
    },
  };
}

const until = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('bytes read ahead while paused come back as pending, then chunks flow into the callback', async (t) => {
  const { accepted, peer } = await socketPair(t);
  // A paused socket from pauseOnConnect reads nothing; resume-then-pause makes it read ahead like a handshake does.
  accepted.resume();
  accepted.pause();
  peer.write('early');
  await until(50);
  const sink = collector(4);
  const adopted = readIntoReusedBuffer(accepted, (chunk) => sink.onChunk(chunk));
  t.ok(adopted.reused, 'a plain TCP socket moves to reused-buffer reads');
  t.not(adopted.socket, accepted, 'through a new socket object');
  t.equal(adopted.pending?.toString(), 'early', 'what was read ahead is returned, not lost');
  t.ok(accepted.destroyed, 'the original socket object is released');
  adopted.socket.resume();
  peer.write('late');
  await sink.done;
  t.equal(Buffer.concat(sink.copies).toString(), 'late');
  // Writes go out through the adopted socket.
  const echoed = once(peer, 'data');
  adopted.socket.write('back');
  t.equal(String((await echoed)[0]), 'back');
});

t.test('the same memory is read into again unless the callback keeps the chunk', async (t) => {
  const { accepted, peer } = await socketPair(t);
  const seen: { chunk: Buffer; copy: string }[] = [];
  let keep = false;
  const adopted = readIntoReusedBuffer(accepted, (chunk) => {
    seen.push({ chunk, copy: chunk.toString() });
    return keep;
  });
  adopted.socket.resume();
  // One write at a time, each read before the next: one chunk per write.
  for (const text of ['one', 'two']) {
    peer.write(text);
    await eventually(() => seen.at(-1)?.copy === text, 5000, `the chunk '${text}'`);
  }
  t.equal(seen.length, 2);
  t.equal(seen[0].chunk.buffer, seen[1].chunk.buffer, 'no fresh buffer per read');
  keep = true;
  peer.write('kept');
  await eventually(() => seen.at(-1)?.copy === 'kept', 5000, 'the kept chunk');
  keep = false;
  peer.write('next!');
  await eventually(() => seen.at(-1)?.copy === 'next!', 5000, 'the chunk after it');
  t.equal(seen.length, 4);
  t.equal(seen[2].chunk.toString(), 'kept', 'a kept chunk is not overwritten by the next read');
  t.not(seen[3].chunk.buffer, seen[2].chunk.buffer, 'the read after a kept chunk goes to a fresh buffer');
});

t.test('pause stops the reads and resume restarts them (backpressure)', async (t) => {
  const { accepted, peer } = await socketPair(t);
  const sink = collector(6);
  const adopted = readIntoReusedBuffer(accepted, (chunk) => sink.onChunk(chunk));
  adopted.socket.resume();
  await until(10);
  adopted.socket.pause();
  peer.write('paused');
  await until(50);
  t.equal(sink.copies.length, 0, 'nothing delivered while paused');
  adopted.socket.resume();
  await sink.done;
  t.equal(Buffer.concat(sink.copies).toString(), 'paused');
});

t.test('a pause in the same tick as the resume still stops the reads after at most one chunk', async (t) => {
  const { accepted, peer } = await socketPair(t);
  const sink = collector(Infinity);
  const adopted = readIntoReusedBuffer(accepted, (chunk) => sink.onChunk(chunk));
  adopted.socket.resume();
  adopted.socket.pause();
  for (const text of ['first', 'second', 'third']) {
    peer.write(text);
    await until(30);
  }
  t.ok(sink.copies.length <= 1, `delivered while paused: ${sink.copies.length} chunk(s)`);
  adopted.socket.resume();
  await eventually(() => Buffer.concat(sink.copies).length >= 'firstsecondthird'.length, 5000, 'the rest after resume');
  t.equal(Buffer.concat(sink.copies).toString(), 'firstsecondthird', 'the rest comes after resume, in order');
});

t.test('the peer closing ends and closes the adopted socket', async (t) => {
  const { accepted, peer } = await socketPair(t);
  const adopted = readIntoReusedBuffer(accepted, () => false);
  adopted.socket.resume();
  const ended = once(adopted.socket, 'end');
  const closed = once(adopted.socket, 'close');
  peer.end();
  await ended;
  await closed;
  t.pass('end and close arrive');
});

t.test('a socket with writes still queued stays as it is, read through data events', async (t) => {
  const { accepted, peer } = await socketPair(t);
  accepted.cork();
  accepted.write('queued');
  const sink = collector(5);
  const adopted = readIntoReusedBuffer(accepted, (chunk) => sink.onChunk(chunk));
  t.notOk(adopted.reused);
  t.equal(adopted.socket, accepted);
  accepted.uncork();
  adopted.socket.resume();
  peer.write('hello');
  await sink.done;
  t.equal(Buffer.concat(sink.copies).toString(), 'hello');
});
