// Bundled by esbuild for Chromium: OpenFeature's web SDK with the OFREP web provider.
// The test page calls window.runCases({url, key, cases}) and gets the answers back.
import { OpenFeature } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

window.runCases = async ({ url, key, cases }) => {
  await OpenFeature.setProviderAndWait(
    new OFREPWebProvider({
      baseUrl: url,
      headers: [['Authorization', `Bearer ${key}`]],
      pollInterval: 0,
      // The default, 'local-cache-first', answers a context change from the browser's cache
      // (keyed by targetingKey alone) and refreshes in the background: the previous context's
      // answers until then. Each case here is a new context, so always ask the server.
      cacheMode: 'disabled',
    }),
    {},
  );
  const client = OpenFeature.getClient();
  const answers = [];
  for (const c of cases) {
    await OpenFeature.setContext(c.context);
    const details = client.getBooleanDetails(c.toggle, false);
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
  return answers;
};
