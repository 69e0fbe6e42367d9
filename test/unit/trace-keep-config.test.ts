/** The trace.keep and trace.format keys: defaults, forms, sources and mistakes. */
import t from 'tap';
import { buildConfig, ConfigError, settingsFromEnv } from '../../src/config/load.js';

const keepOf = (file: Record<string, unknown>, env: Record<string, string> = {}) => buildConfig(file, settingsFromEnv(env), {}).trace.keep;

t.test('defaults: every transaction kept, the rules ready for when sampling is turned on', async (t) => {
  const config = buildConfig({}, {}, {});
  t.equal(config.trace.format, 'auto');
  t.same(config.trace.keep, { sample: 1, slower_than: 500, errors: true, deadlocks: true, lock_waits: true, policies: true, not_atomic: true, max_held: 1000 });
});

t.test('sample: a fraction or a percentage, from the file or TXPROXY_TRACE_KEEP_SAMPLE', async (t) => {
  t.equal(keepOf({ trace: { keep: { sample: 0.01 } } }).sample, 0.01);
  t.equal(keepOf({ trace: { keep: { sample: '1%' } } }).sample, 0.01);
  t.equal(keepOf({ trace: { keep: { sample: '0.5' } } }).sample, 0.5);
  t.equal(keepOf({ trace: { keep: { sample: 0 } } }).sample, 0);
  t.equal(keepOf({}, { TXPROXY_TRACE_KEEP_SAMPLE: '0.25' }).sample, 0.25);
  t.equal(keepOf({}, { TXPROXY_TRACE_KEEP_SAMPLE: '10%' }).sample, 0.1);
  t.equal(keepOf({ trace: { keep: { sample: 0.3 } } }, { TXPROXY_TRACE_KEEP_SAMPLE: '1' }).sample, 1, 'the variable overrides the file');
});

t.test('slower_than: a duration or off', async (t) => {
  t.equal(keepOf({ trace: { keep: { slower_than: '2s' } } }).slower_than, 2000);
  t.equal(keepOf({ trace: { keep: { slower_than: 'off' } } }).slower_than, null);
  t.equal(keepOf({ trace: { keep: { slower_than: null } } }).slower_than, null);
  t.equal(keepOf({}, { TXPROXY_TRACE_KEEP_SLOWER_THAN: '750ms' }).slower_than, 750);
});

t.test('trace.format from the file, TXPROXY_TRACE_FORMAT and --trace-format', async (t) => {
  t.equal(buildConfig({ trace: { format: 'transcript' } }, {}, {}).trace.format, 'transcript');
  t.equal(buildConfig({}, settingsFromEnv({ TXPROXY_TRACE_FORMAT: 'ndjson' }), {}).trace.format, 'ndjson');
  t.equal(buildConfig({}, {}, { 'trace.format': 'ndjson' }).trace.format, 'ndjson');
});

t.test('mistakes name the key, the source and what is allowed', async (t) => {
  const mistakes: [Record<string, unknown>, Record<string, string>, string][] = [
    [{ trace: { keep: { sample: 1.5 } } }, {}, "invalid value for 'trace.keep.sample' in configuration: expected a fraction from 0 to 1 (such as 0.01) or a percentage (such as 1%); got 1.5"],
    [{}, { TXPROXY_TRACE_KEEP_SAMPLE: '150%' }, "invalid value for 'trace.keep.sample' from TXPROXY_TRACE_KEEP_SAMPLE: expected a fraction from 0 to 1 (such as 0.01) or a percentage (such as 1%); got '150%'"],
    [{ trace: { keep: { sample: 'most' } } }, {}, "invalid value for 'trace.keep.sample' in configuration: expected a fraction from 0 to 1 (such as 0.01) or a percentage (such as 1%); got 'most'"],
    [{ trace: { keep: { slower_than: 'slow' } } }, {}, "invalid value for 'trace.keep.slower_than' in configuration: expected a duration such as 500ms, 30s, 5m, or a number of milliseconds, or off; got 'slow'"],
    [{ trace: { keep: { max_held: 3 } } }, {}, "invalid value for 'trace.keep.max_held' in configuration: expected a whole number of at least 16; got 3"],
    [{ trace: { keep: { errors: 'yes' } } }, {}, "invalid value for 'trace.keep.errors' in configuration: expected true or false; got 'yes'"],
    [{ trace: { keep: { sampel: 0.1 } } }, {}, "unknown key 'trace.keep.sampel' in configuration; allowed in 'trace.keep': sample, slower_than, errors, deadlocks, lock_waits, policies, not_atomic, max_held"],
    [{ trace: { format: 'json' } }, {}, "invalid value for 'trace.format' in configuration: expected one of auto, ndjson, transcript; got 'json'"],
  ];
  for (const [file, env, message] of mistakes) {
    t.throws(() => buildConfig(file, settingsFromEnv(env), {}), new ConfigError(message), message);
  }
});
