// The Unleash Node SDK (unleash-client) against Rollcall's /api/client/features.
// stdin: {"url", "key", "cases": [{"id", "toggle", "context"}]}
// stdout: [{"id", "enabled", "variant": {"name", "enabled", "payload"?}}]
import { initialize } from 'unleash-client';
import { readInput, printAnswers } from './read_input.mjs';

const input = await readInput();
const client = initialize({
  url: `${input.url}/api`,
  appName: 'rollcall-compat',
  customHeaders: { Authorization: input.key },
  disableMetrics: true,
  refreshInterval: 3600000,
  timeout: 10000,
});
client.on('error', (error) => {
  process.stderr.write(`unleash-client error: ${error}\n`);
});
await new Promise((resolve, reject) => {
  // unref: a pending timer would otherwise keep Node running for 20 s after the answers.
  setTimeout(() => reject(new Error('unleash-client did not synchronise in 20 s')), 20000).unref();
  client.once('synchronized', resolve);
});
const answers = input.cases.map((c) => {
  const variant = client.getVariant(c.toggle, c.context);
  return {
    id: c.id,
    enabled: client.isEnabled(c.toggle, c.context),
    variant: { name: variant.name, enabled: variant.enabled, payload: variant.payload ?? null },
  };
});
client.destroy();
printAnswers(answers);
