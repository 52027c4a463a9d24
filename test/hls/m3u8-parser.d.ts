/** Types for the parts of `m3u8-parser` (which ships none) that the HLS tests use. */
declare module 'm3u8-parser' {
  export class Parser {
    constructor();
    push(text: string): void;
    end(): void;
    on(event: 'warn' | 'info', listener: (event: { message: string }) => void): void;
    // biome-ignore lint/suspicious/noExplicitAny: the parsed manifest is a loose JSON tree.
    manifest: any;
  }
}
