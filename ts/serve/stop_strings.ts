// OpenAI's `stop`: strings that end the completion where they first appear, themselves left out. Text streams
// through piece by piece; the tail that could still become a stop string is held back until it cannot (or the
// stream ends), so nothing after a stop string is ever sent.
export class StopStrings {
  readonly #stops: readonly string[];
  #held = '';
  #stopped = false;

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  get stopped(): boolean { return this.#stopped; }

  /** The text that may be sent now; after a stop string, '' (and `stopped` is true). */
  push(piece: string): string {
    if (this.#stopped) return '';
    const text = this.#held + piece;
    let cut = -1;
    for (const s of this.#stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.#stopped = true;
      this.#held = '';
      return text.slice(0, cut);
    }
    // Hold back the longest tail that is the start of a stop string.
    let keep = 0;
    for (const s of this.#stops) {
      for (let n = Math.min(s.length - 1, text.length); n > keep; n--) {
        if (text.endsWith(s.slice(0, n))) { keep = n; break; }
      }
    }
    this.#held = text.slice(text.length - keep);
    return text.slice(0, text.length - keep);
  }

  /** What is still held back, at the end of the text. */
  flush(): string {
    const rest = this.#stopped ? '' : this.#held;
    this.#held = '';
    return rest;
  }
}
