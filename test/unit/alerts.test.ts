import { fileURLToPath } from 'node:url';
import test from 'ava';
import { promtool } from '../helpers/promtool.js';

const dir = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));

test('the alert rules in deploy/prometheus are valid and fire as their tests say', async (t) => {
  const checked = await promtool(['check', 'rules', 'ckpt-alerts.yml'], dir);
  t.true(checked.ok, checked.out);
  t.regex(checked.out, /SUCCESS: 5 rules found/);
  const tested = await promtool(['test', 'rules', 'ckpt-alerts.test.yml'], dir);
  t.true(tested.ok, tested.out);
  t.regex(tested.out, /SUCCESS/);
});
