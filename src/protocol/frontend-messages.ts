/**
 * Frontend message encoders from pg-protocol (node-postgres), taken from its
 * CommonJS serializer module directly: the package's ESM wrapper re-imports
 * its CommonJS build, which some TypeScript loaders cannot follow.
 */
import serializer from 'pg-protocol/dist/serializer';

export const serialize = serializer.serialize;
