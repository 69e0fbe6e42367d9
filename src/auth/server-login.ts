/**
 * txproxy logging in to PostgreSQL on its own, for a pooled server
 * connection: answers whatever method the server's pg_hba.conf asks for
 * (trust, cleartext password, md5, SCRAM-SHA-256) with what the client's
 * login left (ServerCredentials), and collects what the server says before
 * its first ReadyForQuery: ParameterStatus and BackendKeyData.
 *
 * Message-driven, without the socket: the caller feeds the server's
 * messages (type byte and body) and writes what comes back.
 */
import { AuthCode } from '../protocol/codes.js';
import { decodeErrorFields, type ErrorFields } from '../protocol/decode.js';
import { md5Hash, md5Response } from './md5.js';
import type { ServerCredentials } from './client-authenticator.js';
import { ScramClientExchange, ScramError } from './scram.js';

export interface LoggedIn {
  parameters: Map<string, string>;
  backendPid: number;
  backendKey: Buffer;
}

export interface LoginStep {
  send?: Buffer[];
  /** Set at the server's first ReadyForQuery. */
  done?: LoggedIn;
  /** The server refused, or asked for something the credentials cannot answer. */
  failed?: { message: string; fields?: ErrorFields };
}

function passwordMessage(body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = 0x70; // p
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** The fields of an ErrorResponse given by its body; decodeErrorFields reads a whole message, and errors are rare enough to rebuild one. */
export function errorFieldsOfBody(body: Buffer): ErrorFields {
  const whole = Buffer.concat([Buffer.from([0x45, 0, 0, 0, 0]), body]);
  return decodeErrorFields(whole, 0, whole.length);
}

const cstring = (text: string) => Buffer.from(`${text}\0`, 'utf8');

export class ServerLogin {
  private scram: ScramClientExchange | null = null;
  private readonly parameters = new Map<string, string>();
  private backendPid = 0;
  private backendKey = Buffer.alloc(0);

  constructor(
    private readonly user: string,
    private readonly credentials: ServerCredentials,
  ) {}

  /** One message from the server: its type letter and its body (after the length). */
  onMessage(type: string, body: Buffer): LoginStep {
    try {
      switch (type) {
        case 'R':
          return this.onAuthentication(body);
        case 'S': {
          const nul = body.indexOf(0);
          this.parameters.set(body.toString('utf8', 0, nul), body.toString('utf8', nul + 1, body.length - 1));
          return {};
        }
        case 'K':
          this.backendPid = body.readInt32BE(0);
          this.backendKey = Buffer.from(body.subarray(4));
          return {};
        case 'E': {
          const fields = errorFieldsOfBody(body);
          return { failed: { message: fields.message ?? 'the server refused the login', fields } };
        }
        case 'Z':
          return { done: { parameters: this.parameters, backendPid: this.backendPid, backendKey: this.backendKey } };
        default:
          // NoticeResponse and NegotiateProtocolVersion need no answer.
          return {};
      }
    } catch (err) {
      if (err instanceof ScramError) return { failed: { message: err.message } };
      throw err;
    }
  }

  private onAuthentication(body: Buffer): LoginStep {
    const code = body.readInt32BE(0);
    const credentials = this.credentials;
    switch (code) {
      case AuthCode.Ok:
        return {};
      case AuthCode.CleartextPassword:
        if (credentials.kind !== 'password') return this.cannot('a cleartext password');
        return { send: [passwordMessage(cstring(credentials.password))] };
      case AuthCode.MD5Password: {
        const hash = credentials.kind === 'md5' ? credentials.hash : credentials.kind === 'password' ? md5Hash(this.user, credentials.password) : null;
        if (hash === null) return this.cannot('an md5 password');
        return { send: [passwordMessage(cstring(md5Response(hash, body.subarray(4, 8))))] };
      }
      case AuthCode.SASL: {
        const mechanisms = body.toString('utf8', 4).split('\0').filter((m) => m !== '');
        if (!mechanisms.includes('SCRAM-SHA-256')) return { failed: { message: `the server offers no SASL mechanism txproxy speaks (${mechanisms.join(', ')})` } };
        if (credentials.kind === 'password') this.scram = new ScramClientExchange({ password: credentials.password });
        else if (credentials.kind === 'scram-keys') this.scram = new ScramClientExchange(credentials);
        else return this.cannot('SCRAM-SHA-256');
        const first = Buffer.from(this.scram.start());
        const length = Buffer.alloc(4);
        length.writeInt32BE(first.length);
        return { send: [passwordMessage(Buffer.concat([cstring('SCRAM-SHA-256'), length, first]))] };
      }
      case AuthCode.SASLContinue:
        if (this.scram === null) return { failed: { message: 'the server continued a SASL exchange that was not started' } };
        return { send: [passwordMessage(Buffer.from(this.scram.respond(body.toString('utf8', 4))))] };
      case AuthCode.SASLFinal:
        if (this.scram === null) return { failed: { message: 'the server finished a SASL exchange that was not started' } };
        this.scram.verify(body.toString('utf8', 4));
        return {};
      default:
        return { failed: { message: `the server asks for an authentication method txproxy does not speak (code ${code})` } };
    }
  }

  private cannot(method: string): LoginStep {
    const what = { none: 'no password', password: 'a password', md5: 'an md5 hash', 'scram-keys': 'SCRAM keys' }[this.credentials.kind];
    return { failed: { message: `the server asks for ${method}, and txproxy has ${what} for user "${this.user}"` } };
  }
}
