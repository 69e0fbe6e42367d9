/**
 * The SASL messages txproxy looks into during authentication, for SCRAM
 * channel binding (RFC 5802 §6, RFC 5929 tls-server-end-point):
 * https://www.postgresql.org/docs/current/sasl-authentication.html
 *
 * A client that binds the channel binds the TLS session it sees, which ends
 * at txproxy; the server binds its own. The two match only when txproxy
 * presents the server's own certificate. Otherwise SCRAM-SHA-256-PLUS must
 * not be offered to the client, and a client that then says "I support
 * binding but you did not offer it" (gs2 flag `y`) would be refused by a TLS
 * server as a downgrade attack.
 */
import { authenticationSasl } from './encode.js';
import { decodeSaslMechanisms, readCString } from './decode.js';

const BODY = 5;

/**
 * AuthenticationSASL (`buf[start, end)`) without its channel-binding
 * mechanisms (names ending in `-PLUS`), or null when it offers none.
 */
export function withoutChannelBinding(buf: Buffer, start: number, end: number): Buffer | null {
  const mechanisms = decodeSaslMechanisms(buf, start, end);
  const usable = mechanisms.filter((m) => !m.endsWith('-PLUS'));
  return usable.length === mechanisms.length ? null : authenticationSasl(usable);
}

/**
 * What a client's gs2 header says about channel binding: `n` it does not
 * support it, `y` it does but thinks the server does not, `p` it binds.
 */
export type ChannelBindingFlag = 'n' | 'y' | 'p';

/**
 * SASLInitialResponse (`'p'`, the first Password-type message of a SASL
 * exchange): the chosen mechanism and the gs2 channel-binding flag of its
 * client-first-message; flag null when there is no initial response or it
 * does not start with a known flag.
 */
export function decodeSaslInitialResponse(buf: Buffer, start: number, end: number): { mechanism: string; flag: ChannelBindingFlag | null } {
  const [mechanism, next] = readCString(buf, start + BODY, end);
  if (next + 4 > end) return { mechanism, flag: null };
  const length = buf.readInt32BE(next);
  const first = length > 0 && next + 4 < end ? String.fromCharCode(buf[next + 4]) : '';
  const flag = first === 'n' || first === 'y' || first === 'p' ? first : null;
  return { mechanism, flag };
}
