/**
 * The txproxy command with nothing but the standard OpenTelemetry
 * variables: OTEL_EXPORTER_OTLP_ENDPOINT alone turns export on (OTLP/HTTP
 * with protobuf bodies, the specification's default), and the headers and
 * service name variables are honoured.
 */
import t from 'tap';
import pg from 'pg';
import { startOtlpReceiver } from '../helpers/otlp-receiver.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { runCli, startCli } from '../helpers/txproxy-cli.js';

t.test('OTEL_EXPORTER_OTLP_ENDPOINT alone: spans go out as protobuf, with the configured headers and service name', async (t) => {
  const postgres = await startPostgres();
  const receiver = await startOtlpReceiver();
  t.teardown(async () => {
    await receiver.close();
    await postgres.stop();
  });
  const cli = await startCli(['--upstream', `${postgres.url}?sslmode=disable`, '--listen', '127.0.0.1:0', '--http', 'off', '--trace', 'off'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20s3cret',
    OTEL_SERVICE_NAME: 'orders-db-proxy',
    OTEL_BSP_SCHEDULE_DELAY: '20',
  });
  const client = new pg.Client({ host: '127.0.0.1', port: cli.port, user: postgres.user, password: postgres.password, database: 'postgres' });
  await client.connect();
  const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  await client.query(`SELECT 'exported' /*traceparent='00-${traceId}-1122334455667788-01'*/`);
  await client.end();
  await eventually(() => receiver.protobufBodies.length > 0, 20_000, 'an export');
  cli.kill('SIGTERM');
  t.equal((await cli.exited).code, 0);

  t.equal(receiver.contentTypes[0], 'application/x-protobuf', 'protobuf, the default protocol');
  t.equal(receiver.headers[0].authorization, 'Bearer s3cret', 'OTEL_EXPORTER_OTLP_HEADERS, percent-decoded');
  // This receiver decodes OTLP's JSON encoding only (otel-spans.test.ts): here the bytes must hold the trace id and the service name.
  const body = Buffer.concat(receiver.protobufBodies);
  t.ok(body.includes(Buffer.from(traceId, 'hex')), 'the trace id of the traceparent');
  t.ok(body.includes(Buffer.from('orders-db-proxy')), 'OTEL_SERVICE_NAME');
  t.match(cli.stderr() + cli.stdout(), /span export on/);
});

t.test('--help says how to turn span export on', async (t) => {
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /OpenTelemetry span export: set OTEL_EXPORTER_OTLP_ENDPOINT \(the other OTEL_\* variables: docs\/opentelemetry\.md\)/);
});
