/** A pino logger whose records are kept in memory, so tests can assert what txproxy logged. */
import pino, { type Logger } from 'pino';

export interface LogRecord {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export function captureLog(level: pino.Level = 'debug'): { log: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const log = pino({ level }, { write: (line: string) => void records.push(JSON.parse(line) as LogRecord) });
  return { log, records };
}
