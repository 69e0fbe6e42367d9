/**
 * Buffer's own codecs, called without the argument handling of toString()
 * and write(), which cost as much as decoding a short query or a tenth of
 * encoding a trace record. Every Node.js Buffer has them (undocumented: they
 * are what toString and write call); toString and write serve where a
 * Buffer would not.
 */

interface BufferCodecs {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
  utf8Write(text: string, offset: number): number;
}

const has = (name: keyof BufferCodecs): boolean => typeof (Buffer.prototype as Partial<BufferCodecs>)[name] === 'function';

/** `buf[start, end)` decoded as UTF-8. */
export const utf8Slice: (buf: Buffer, start: number, end: number) => string = has('utf8Slice')
  ? (buf, start, end) => (buf as unknown as BufferCodecs).utf8Slice(start, end)
  : (buf, start, end) => buf.toString('utf8', start, end);

/** `buf[start, end)` decoded as Latin-1 (each byte one character). */
export const latin1Slice: (buf: Buffer, start: number, end: number) => string = has('latin1Slice')
  ? (buf, start, end) => (buf as unknown as BufferCodecs).latin1Slice(start, end)
  : (buf, start, end) => buf.toString('latin1', start, end);

/** Encodes `text` as UTF-8 into `buffer` at `offset`; returns the bytes written. */
export const utf8Write: (buffer: Buffer, text: string, offset: number) => number = has('utf8Write')
  ? (buffer, text, offset) => (buffer as unknown as BufferCodecs).utf8Write(text, offset)
  : (buffer, text, offset) => buffer.write(text, offset, 'utf8');
