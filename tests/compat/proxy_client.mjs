// unleash-proxy-client (the browser/mobile SDK) against Rollcall's frontend API, in Node.
// stdin: {"url", "key", "cases": [{"id", "toggle", "context"}], "post": bool}
// stdout: [{"id", "enabled", "variant", "sentContext"}]: the context the SDK really sent
// (it adds appName, environment and a random sessionId of its own).
import { UnleashClient, InMemoryStorageProvider } from 'unleash-proxy-client';
import { readInput, printAnswers } from './read_input.mjs';

const input = await readInput();
const answers = [];
for (const c of input.cases) {
  const { appName, environment, ...context } = c.context;
  const client = new UnleashClient({
    url: `${input.url}/api/frontend`,
    clientKey: input.key,
    appName: appName ?? 'rollcall-compat',
    environment: environment ?? 'default',
    context,
    refreshInterval: 0,
    disableMetrics: true,
    usePOSTrequests: Boolean(input.post),
    storageProvider: new InMemoryStorageProvider(),
  });
  let failure = null;
  client.on('error', (error) => {
    failure = error;
  });
  await client.start();
  if (failure) throw new Error(`unleash-proxy-client failed: ${JSON.stringify(failure)}`);
  const variant = client.getVariant(c.toggle);
  answers.push({
    id: c.id,
    enabled: client.isEnabled(c.toggle),
    variant: { name: variant.name, enabled: variant.enabled, payload: variant.payload ?? null },
    sentContext: client.getContext(),
  });
  client.stop();
}
printAnswers(answers);
