import t from 'tap';
import { buildConfig, ConfigError } from '../../src/config/load.js';

t.test('lock_monitor defaults: on, 200 ms threshold, 100 ms interval', async (t) => {
  t.same(buildConfig({}, {}, {}).lock_monitor, { enabled: true, threshold: 200, interval: 100 });
});

t.test('lock_monitor takes durations as text or milliseconds', async (t) => {
  t.same(buildConfig({ lock_monitor: { threshold: '1.5s', interval: 250 } }, {}, {}).lock_monitor, { enabled: true, threshold: 1500, interval: 250 });
  t.same(buildConfig({ lock_monitor: { enabled: false } }, {}, {}).lock_monitor, { enabled: false, threshold: 200, interval: 100 });
});

t.test('lock_monitor mistakes name the key', async (t) => {
  t.throws(() => buildConfig({ lock_monitor: { interval: '5ms' } }, {}, {}), new ConfigError("invalid value for 'lock_monitor.interval' in configuration: must be at least 10ms; got '5ms'"));
  t.throws(() => buildConfig({ lock_monitor: { threshold: 'soon' } }, {}, {}), { message: /'lock_monitor\.threshold' in configuration: expected a duration/ });
  t.throws(() => buildConfig({ lock_monitor: { treshold: 100 } }, {}, {}), { message: /unknown key 'lock_monitor\.treshold'/ });
  t.throws(() => buildConfig({ lock_monitor: { enabled: 'yes' } }, {}, {}), { message: /'lock_monitor\.enabled'/ });
});
