/**
 * Strings the server sends over and over, handed out again without being
 * decoded: a CommandComplete's tag is one of a few (`SELECT 1`, `UPDATE 1`,
 * `BEGIN`, `COMMIT`) in nearly every session, and comparing its few bytes
 * with those of the tag last seen in its slot costs a fraction of asking
 * the engine for a new string.
 */

/** Slots, a power of two: more than the tags a workload ends its statements with. */
const SLOTS = 64;
/** Longer strings are decoded every time: few repeat. */
const MAX_BYTES = 32;

export class RecentStrings {
  private readonly bytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(SLOTS).fill(null);
  private readonly strings: string[] = new Array<string>(SLOTS).fill('');

  /**
   * @param decode makes the string of bytes seen for the first time (or
   * pushed out of their slot since).
   */
  constructor(private readonly decode: (buf: Uint8Array, start: number, end: number) => string) {}

  /** The string of `buf[start, end)` if those bytes were read recently; null if not. */
  find(buf: Uint8Array, start: number, end: number): string | null {
    const length = end - start;
    if (length === 0 || length > MAX_BYTES) return null;
    const slot = slotOf(buf, start, end);
    const known = this.bytes[slot];
    return known !== null && sameBytes(known, buf, start, length) ? this.strings[slot] : null;
  }

  /** The string of `buf[start, end)`, decoded now and remembered. */
  add(buf: Uint8Array, start: number, end: number): string {
    const text = this.decode(buf, start, end);
    if (end > start && end - start <= MAX_BYTES) {
      const slot = slotOf(buf, start, end);
      // A copy: `buf` may be a read buffer that the next read fills again.
      this.bytes[slot] = new Uint8Array(buf.subarray(start, end));
      this.strings[slot] = text;
    }
    return text;
  }
}

/** A few of the bytes and their number: tags that share a slot are rare. */
function slotOf(buf: Uint8Array, start: number, end: number): number {
  const length = end - start;
  return (Math.imul(length, 31) + buf[start] + Math.imul(buf[end - 1], 7) + buf[start + (length >> 1)]) & (SLOTS - 1);
}

function sameBytes(known: Uint8Array, buf: Uint8Array, start: number, length: number): boolean {
  if (known.length !== length) return false;
  for (let i = 0; i < length; i++) if (known[i] !== buf[start + i]) return false;
  return true;
}
