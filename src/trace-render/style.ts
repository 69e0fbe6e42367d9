/**
 * Colour for the transcript: ANSI styles through node:util styleText when
 * the output is a terminal, plain text otherwise. Whether to colour is
 * decided once, by the caller, from the stream and the environment.
 */
import { styleText } from 'node:util';

/** What a piece of text is, not how it looks. */
export type Tone =
  | 'header'
  | 'meta'
  | 'duration'
  | 'tag'
  | 'sql'
  | 'tree'
  | 'ok'
  | 'rollback'
  | 'error'
  | 'warning'
  | 'notice'
  | 'lock'
  | 'policy'
  | 'undone';

export type Style = (tone: Tone, text: string) => string;

type Format = Parameters<typeof styleText>[0];

const FORMATS: Record<Tone, Format> = {
  header: 'bold',
  meta: 'dim',
  duration: 'cyan',
  tag: 'blue',
  sql: 'reset',
  tree: 'dim',
  ok: 'green',
  rollback: 'yellow',
  error: ['bold', 'red'],
  warning: ['bold', 'yellow'],
  notice: 'yellow',
  lock: 'magenta',
  policy: 'cyan',
  undone: ['dim', 'strikethrough'],
};

export const plainStyle: Style = (_tone, text) => text;

export const colourStyle: Style = (tone, text) =>
  text === '' || tone === 'sql' ? text : styleText(FORMATS[tone], text, { validateStream: false });

/**
 * Colour when writing to a terminal, unless NO_COLOR is set
 * (https://no-color.org); FORCE_COLOR (other than 0) asks for colour anywhere.
 */
export function wantsColour(isTerminal: boolean, env: Record<string, string | undefined>): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  return isTerminal;
}
