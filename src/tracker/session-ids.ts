/**
 * Session ids: `<boot>-<n>`, e.g. `k3x9qa-7`, `n` counting from 1 in each
 * txproxy process and `<boot>` six random letters and digits drawn when the
 * process starts. Transaction and request ids extend them (`k3x9qa-7.t3`,
 * `k3x9qa-7.r1`).
 *
 * A trace file is appended to across restarts, and several txproxy
 * instances may feed one log pipeline: with counters alone both would say
 * session 1, and a reader would take the records of two sessions for one.
 * The boot prefix keeps ids apart (one chance in two billion that two boots
 * draw the same) while staying short to print and to type into
 * `txproxy trace --session`.
 */
import { randomInt } from 'node:crypto';

const BOOT_LENGTH = 6;
const BOOT_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** This process's boot prefix. */
export const BOOT_ID = randomBoot();

let nextSession = 1;

export function newSessionId(): string {
  return `${BOOT_ID}-${nextSession++}`;
}

function randomBoot(): string {
  let id = '';
  for (let i = 0; i < BOOT_LENGTH; i++) id += BOOT_ALPHABET[randomInt(BOOT_ALPHABET.length)];
  return id;
}
