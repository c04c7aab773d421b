// Shared by the compatibility drivers: read {"url", "key", "cases": [...]} as JSON from stdin.
export async function readInput() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export function printAnswers(answers) {
  process.stdout.write(JSON.stringify(answers));
}
