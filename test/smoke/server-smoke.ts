/** Server smoke cases per runtime (filled in with the HTTP service). */
export function serverSmokeCases(_runtime: string): Array<{ name: string; run: () => Promise<void> }> {
  return [];
}
