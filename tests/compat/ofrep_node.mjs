// OpenFeature's Node server SDK with the OFREP provider against Rollcall's /ofrep/v1.
// stdin: {"url", "key", "cases": [{"id", "toggle", "context"}]} (context in OpenFeature's shape)
// stdout: [{"id", "value", "variant", "reason", "errorCode", "metadata"}]
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { readInput, printAnswers } from './read_input.mjs';

const input = await readInput();
await OpenFeature.setProviderAndWait(
  new OFREPProvider({ baseUrl: input.url, headers: [['Authorization', `Bearer ${input.key}`]] }),
);
const client = OpenFeature.getClient();
const answers = [];
for (const c of input.cases) {
  const details = await client.getBooleanDetails(c.toggle, false, c.context);
  answers.push({
    id: c.id,
    value: details.value,
    variant: details.variant ?? null,
    reason: details.reason ?? null,
    errorCode: details.errorCode ?? null,
    metadata: details.flagMetadata ?? {},
  });
}
await OpenFeature.close();
printAnswers(answers);
