/**
 * Reads the raw bytes a real client receives through txproxy, so tests can
 * assert exactly which messages arrived (how many ErrorResponses, whether a
 * stream ends in the middle of a message).
 */
import type net from 'node:net';
import type pg from 'pg';
import { Backend } from '../../src/protocol/codes.js';
import { decodeErrorFields, type ErrorFields } from '../../src/protocol/decode.js';

export interface WireMessage {
  /** The type letter, e.g. 'D', 'E', 'Z'. */
  type: string;
  length: number;
  /** Decoded for ErrorResponse and NoticeResponse. */
  error?: ErrorFields;
}

export interface WireCapture {
  bytes(): Buffer;
  /** The whole messages received, and how many bytes of an unfinished one followed them. */
  messages(): { messages: WireMessage[]; trailing: number };
  errors(): ErrorFields[];
}

/** The socket under a connected node-postgres client. */
export function socketOf(client: pg.Client): net.Socket {
  return (client as unknown as { connection: { stream: net.Socket } }).connection.stream;
}

/** Records every byte the client receives from now on. */
export function captureFromServer(client: pg.Client): WireCapture {
  const chunks: Buffer[] = [];
  // A copy: node-postgres's parser reuses a received chunk's memory for later data.
  socketOf(client).on('data', (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
  const bytes = () => Buffer.concat(chunks);
  const messages = () => parseMessages(bytes());
  return {
    bytes,
    messages,
    errors: () => messages().messages.flatMap((m) => (m.type === 'E' ? [m.error!] : [])),
  };
}

export function parseMessages(buf: Buffer): { messages: WireMessage[]; trailing: number } {
  const messages: WireMessage[] = [];
  let pos = 0;
  while (buf.length - pos >= 5) {
    const length = buf.readInt32BE(pos + 1);
    const end = pos + 1 + length;
    if (end > buf.length) break;
    const type = buf[pos];
    const message: WireMessage = { type: String.fromCharCode(type), length };
    if (type === Backend.ErrorResponse || type === Backend.NoticeResponse) message.error = decodeErrorFields(buf, pos, end);
    messages.push(message);
    pos = end;
  }
  return { messages, trailing: buf.length - pos };
}
