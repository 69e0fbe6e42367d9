import { readFileSync } from 'node:fs';
import t from 'tap';
import { buildConfig, ConfigError, parseConfigFile, settingsFromEnv } from '../../src/config/load.js';
import { OTEL_DEFAULTS, OTEL_ENV_KEYS, parseKeyValues, tracesUrl } from '../../src/otel/otel-config.js';

const fromEnv = (env: Record<string, string>) => buildConfig({}, settingsFromEnv(env), {}).otel;

t.test('otel defaults: export off, every key documented with its default', async (t) => {
  const otel = buildConfig({}, {}, {}).otel;
  t.same(otel, OTEL_DEFAULTS);
  t.equal(tracesUrl(otel), null, 'no endpoint: no export');
});

t.test('OTEL_EXPORTER_OTLP_ENDPOINT alone turns export on, to <endpoint>/v1/traces', async (t) => {
  const otel = fromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' });
  t.equal(tracesUrl(otel), 'http://collector:4318/v1/traces');
  t.equal(tracesUrl(fromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://x.example/otlp/spans' })), 'https://x.example/otlp/spans', 'the signal-specific URL is used as it is');
  t.equal(
    tracesUrl(fromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/v1/traces' })),
    'http://b:4318/v1/traces',
    'and wins over the general one',
  );
});

t.test('the standard OTEL_* variables set their keys', async (t) => {
  const otel = fromEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_HEADERS: 'x-honeycomb-team=abc%3D,tenant = shop ',
    OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
    OTEL_SERVICE_NAME: 'txproxy-eu',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,service.version=1.2.3',
    OTEL_BSP_MAX_QUEUE_SIZE: '4096',
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '256',
    OTEL_BSP_SCHEDULE_DELAY: '1000',
    OTEL_BSP_EXPORT_TIMEOUT: '15000',
  });
  t.match(otel, {
    protocol: 'http/json',
    headers: { 'x-honeycomb-team': 'abc=', tenant: 'shop' },
    timeout: 2500,
    service_name: 'txproxy-eu',
    resource_attributes: { 'deployment.environment.name': 'prod', 'service.version': '1.2.3' },
    max_queue_size: 4096,
    max_export_batch_size: 256,
    schedule_delay: 1000,
    export_timeout: 15000,
  });
  t.equal(fromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }).protocol, 'http/protobuf', 'signal-specific wins');
});

t.test('otel in the config file: mappings, durations and the span settings', async (t) => {
  const otel = buildConfig(
    {
      otel: {
        endpoint: 'http://127.0.0.1:4318',
        headers: { authorization: 'Bearer t' },
        statement_spans: 'slow',
        slow_statement: '250ms',
        untraced: 'sampled',
        untraced_ratio: 0.05,
        schedule_delay: '2s',
      },
    },
    {},
    {},
  ).otel;
  t.match(otel, { headers: { authorization: 'Bearer t' }, statement_spans: 'slow', slow_statement: 250, untraced: 'sampled', untraced_ratio: 0.05, schedule_delay: 2000 });
});

t.test('otel mistakes name the key and, for variables, the variable', async (t) => {
  t.throws(() => fromEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), new ConfigError("invalid value for 'otel.protocol' from OTEL_EXPORTER_OTLP_PROTOCOL: expected one of http/protobuf, http/json (txproxy exports over OTLP/HTTP; gRPC is not supported); got 'grpc'"));
  t.throws(() => fromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), { message: /'otel\.endpoint' from OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:\/\/ or https:\/\/ URL/ });
  t.throws(() => fromEnv({ OTEL_BSP_MAX_QUEUE_SIZE: 'lots' }), { message: /'otel\.max_queue_size' from OTEL_BSP_MAX_QUEUE_SIZE: expected a whole number from 1/ });
  t.throws(() => fromEnv({ OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }), { message: /'otel\.headers' from OTEL_EXPORTER_OTLP_HEADERS: expected a mapping, or text of key=value pairs/ });
  t.throws(() => buildConfig({ otel: { untraced_ratio: 2 } }, {}, {}), { message: /'otel\.untraced_ratio' in configuration: expected a fraction from 0 to 1/ });
  t.throws(() => buildConfig({ otel: { statement_spans: 'some' } }, {}, {}), { message: /'otel\.statement_spans'.*expected one of all, slow, none/ });
  t.throws(() => buildConfig({ otel: { max_queue_size: 10, max_export_batch_size: 20 } }, {}, {}), { message: /otel\.max_export_batch_size must not exceed otel\.max_queue_size/ });
  t.throws(() => buildConfig({ otel: { endpiont: 'http://x' } }, {}, {}), { message: /unknown key 'otel\.endpiont'/ });
});

t.test('key=value lists as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES write them', async (t) => {
  t.same(parseKeyValues('a=1,b=two%20words'), { a: '1', b: 'two words' });
  t.same(parseKeyValues(''), {});
  t.same(parseKeyValues('a=1,,b=2'), { a: '1', b: '2' }, 'empty members are skipped');
  t.same(parseKeyValues('k=a=b'), { k: 'a=b' }, 'the first = separates');
  t.equal(parseKeyValues('=1'), null);
  t.equal(parseKeyValues('k=%zz'), null, 'malformed percent-encoding');
});

t.test('config/otel.example.yaml is valid and shows the defaults', async (t) => {
  const file = new URL('../../config/otel.example.yaml', import.meta.url);
  const otel = buildConfig(parseConfigFile(readFileSync(file, 'utf8'), 'otel.example.yaml'), {}, {}).otel;
  t.same(otel, { ...OTEL_DEFAULTS, endpoint: 'http://127.0.0.1:4318' });
});

t.test('docs/opentelemetry.md documents every otel key and variable', async (t) => {
  const doc = readFileSync(new URL('../../docs/opentelemetry.md', import.meta.url), 'utf8');
  for (const key of Object.keys(OTEL_DEFAULTS)) t.match(doc, `| \`otel.${key}\` |`, key);
  for (const name of Object.keys(OTEL_ENV_KEYS)) t.match(doc, `\`${name}\``, name);
});
