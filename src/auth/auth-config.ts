/**
 * The `auth:` section: how clients log in to txproxy when it pools
 * (docs/pooling.md). With `pool.mode: none` authentication is relayed to
 * the server untouched and this section is not used.
 */
import { z } from 'zod';
import { durationSchema } from '../config/duration.js';


const duration = durationSchema;

export const authSchema = z
  .object({
    /** What clients must prove: nothing, an md5 answer, or a SCRAM-SHA-256 exchange (PostgreSQL's default). */
    type: z.enum(['trust', 'md5', 'scram-sha-256'], { error: 'expected one of trust, md5, scram-sha-256' }).default('scram-sha-256'),
    /** PgBouncer's auth_file: `"user" "secret"` lines, the secret a plain password, an md5 hash or a SCRAM verifier. */
    file: z.string({ error: 'expected a file path' }).min(1, { error: 'expected a file path' }).nullable().default(null),
    /** PgBouncer's auth_user: who runs auth.query on the server (its password comes from auth.file). */
    user: z.string({ error: 'expected a user name' }).min(1, { error: 'expected a user name' }).nullable().default(null),
    /** PgBouncer's auth_query: $1 is the user name; returns the stored secret as `passwd`. */
    query: z.string({ error: 'expected SQL text' }).min(1, { error: 'expected SQL text' }).default('SELECT usename, passwd FROM pg_shadow WHERE usename = $1'),
    /** How long an auth.query answer is reused. */
    query_cache_ttl: duration.default(60_000),
  })
  .strict();

export type AuthConfig = z.output<typeof authSchema>;
