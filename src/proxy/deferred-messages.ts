/**
 * Messages of the chunk being forwarded, kept for the tracker until the
 * chunk is on its way. Tracking (and the trace, metrics and the rest that
 * hang off it) then runs while the client or the server is already working
 * on the bytes, rather than delaying them: the proxy's added latency is the
 * header scan alone.
 *
 * Only possible when nothing must decide about a message before it is
 * forwarded (no policy hook); the session checks that per message.
 */
import { Backend } from '../protocol/codes.js';

export class DeferredMessages {
  private types: number[] = [];
  private buffers: Buffer[] = [];
  private starts: number[] = [];
  private ends: number[] = [];
  private count = 0;

  get empty(): boolean {
    return this.count === 0;
  }

  /** A whole message in `buf[start, end)`; the buffer is not reused until it is written. */
  push(type: number, buf: Buffer, start: number, end: number): void {
    const i = this.count++;
    this.types[i] = type;
    this.buffers[i] = buf;
    this.starts[i] = start;
    this.ends[i] = end;
  }

  /** A DataRow: consecutive ones are counted in one slot (`start` holds the count). */
  dataRow(): void {
    const last = this.count - 1;
    if (last >= 0 && this.types[last] === Backend.DataRow) {
      this.starts[last]++;
      return;
    }
    this.push(Backend.DataRow, EMPTY, 1, 0);
  }

  /** Hands every message over in order (also any pushed meanwhile), and forgets them. */
  drain(onMessage: (type: number, buf: Buffer, start: number, end: number) => void, onDataRows: (count: number) => void): void {
    for (let i = 0; i < this.count; i++) {
      const type = this.types[i];
      if (type === Backend.DataRow && this.buffers[i] === EMPTY) onDataRows(this.starts[i]);
      else onMessage(type, this.buffers[i], this.starts[i], this.ends[i]);
      // Let the chunk go.
      this.buffers[i] = EMPTY;
    }
    this.count = 0;
  }
}

const EMPTY = Buffer.alloc(0);
