/**
 * Short strings sent over and over, handed out again without being
 * decoded: a CommandComplete's tag is one of a few (`SELECT 1`, `UPDATE 1`,
 * `BEGIN`, `COMMIT`) in nearly every session, as are the Queries that
 * begin and end transactions, and comparing a few bytes with those of the
 * string last seen in their slot costs a fraction of asking the engine for
 * a new string.
 */

/** Slots: more than the strings a workload sends over and over. */
const SLOT_BITS = 7;
const SLOTS = 1 << SLOT_BITS;
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
    if (!kept(length)) return null;
    // Each string has two slots, its own and its neighbour: two strings that want one slot both stay.
    const slot = slotOf(buf, start, end);
    if (this.holds(slot, buf, start, length)) return this.strings[slot];
    if (this.holds(slot ^ 1, buf, start, length)) return this.strings[slot ^ 1];
    return null;
  }

  /** The string of `buf[start, end)`, decoded now and remembered. */
  add(buf: Uint8Array, start: number, end: number): string {
    const text = this.decode(buf, start, end);
    if (kept(end - start)) {
      const slot = slotOf(buf, start, end);
      // The newest in its own slot; what was there moves to the neighbour, pushing out what that held.
      if (this.bytes[slot] !== null) {
        this.bytes[slot ^ 1] = this.bytes[slot];
        this.strings[slot ^ 1] = this.strings[slot];
      }
      // A copy: `buf` may be a read buffer that the next read fills again.
      this.bytes[slot] = new Uint8Array(buf.subarray(start, end));
      this.strings[slot] = text;
    }
    return text;
  }

  private holds(slot: number, buf: Uint8Array, start: number, length: number): boolean {
    const known = this.bytes[slot];
    return known !== null && sameBytes(known, buf, start, length);
  }
}

/** Whether strings of this many bytes are remembered. */
function kept(length: number): boolean {
  return length > 0 && length <= MAX_BYTES;
}

/**
 * A slot from the length and three of the bytes, mixed by a multiplication
 * whose top bits depend on all of them: the strings of a session (`BEGIN;`
 * and `END;`, `COMMIT` and `ROLLBACK`) must not take each other's slot.
 */
function slotOf(buf: Uint8Array, start: number, end: number): number {
  const length = end - start;
  const mixed = Math.imul(length ^ (buf[start] << 8) ^ (buf[start + (length >> 1)] << 16) ^ (buf[end - 1] << 24), 0x9e3779b1);
  return mixed >>> (32 - SLOT_BITS);
}

function sameBytes(known: Uint8Array, buf: Uint8Array, start: number, length: number): boolean {
  if (known.length !== length) return false;
  for (let i = 0; i < length; i++) if (known[i] !== buf[start + i]) return false;
  return true;
}
