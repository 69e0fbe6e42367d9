/**
 * PgBouncer's auth_file ("userlist.txt"): one user per line, the name and
 * the secret each in double quotes, a double quote inside doubled:
 *
 *     "alice" "plain password"
 *     "bob" "md5d2f1c8e7a7b0a9c4b8a4e0f5c3b2a1d0"
 *     "carol" "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk...=:c2VydmVy...="
 *
 * As in PgBouncer, a line that does not start with a quoted name is
 * ignored (that is how comments are written), and so is anything after the
 * secret. The secret is a plain password, an md5 hash (`md5` + the hex MD5
 * of password and user name) or a SCRAM-SHA-256 verifier as PostgreSQL
 * stores it in pg_authid.
 */

/** What a user's stored secret lets txproxy do. */
export type Secret =
  | { kind: 'plain'; password: string }
  | { kind: 'md5'; hash: string }
  | { kind: 'scram-sha-256'; iterations: number; salt: Buffer; storedKey: Buffer; serverKey: Buffer };

export class UserlistError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'UserlistError';
  }
}

const MD5_HASH = /^md5[0-9a-f]{32}$/;
const SCRAM_VERIFIER = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

/** A stored secret as PostgreSQL (and PgBouncer) tell its kind: by its shape. */
export function parseSecret(text: string): Secret {
  if (MD5_HASH.test(text)) return { kind: 'md5', hash: text };
  const scram = SCRAM_VERIFIER.exec(text);
  if (scram !== null) {
    const storedKey = Buffer.from(scram[3], 'base64');
    const serverKey = Buffer.from(scram[4], 'base64');
    // SHA-256 keys are 32 bytes; anything else is not a verifier PostgreSQL would accept.
    if (storedKey.length === 32 && serverKey.length === 32 && Number(scram[1]) > 0) {
      return { kind: 'scram-sha-256', iterations: Number(scram[1]), salt: Buffer.from(scram[2], 'base64'), storedKey, serverKey };
    }
  }
  return { kind: 'plain', password: text };
}

/** Reads one double-quoted field starting at `at` (the opening quote); null when it never closes. */
function quotedField(line: string, at: number): { value: string; next: number } | null {
  let value = '';
  let i = at + 1;
  for (;;) {
    const quote = line.indexOf('"', i);
    if (quote === -1) return null;
    value += line.slice(i, quote);
    if (line[quote + 1] === '"') {
      value += '"';
      i = quote + 2;
      continue;
    }
    return { value, next: quote + 1 };
  }
}

/** The users of an auth_file, by name. A later line for the same user wins, as in PgBouncer. */
export function parseUserlist(text: string): Map<string, Secret> {
  const users = new Map<string, Secret>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trimStart();
    if (!line.startsWith('"')) return;
    const number = index + 1;
    const name = quotedField(line, 0);
    if (name === null) throw new UserlistError(number, 'the user name has no closing double quote');
    const rest = line.slice(name.next);
    const secretStart = rest.search(/\S/);
    if (secretStart === -1 || rest[secretStart] !== '"') throw new UserlistError(number, `expected "user" "secret"; user "${name.value}" has no quoted secret`);
    const secret = quotedField(rest, secretStart);
    if (secret === null) throw new UserlistError(number, `the secret of user "${name.value}" has no closing double quote`);
    users.set(name.value, parseSecret(secret.value));
  });
  return users;
}
