/**
 * The import command's progress, counted per byte as files stream out (not per finished file).
 * On a terminal it redraws one bar line, at most every `redrawMs` while bytes flow; elsewhere
 * (a log, a CI job) it prints a plain line at most every `plainEveryMs`, so a long upload still
 * shows it is moving without flooding the log. Event lines (`note`) go between, never through the bar.
 */
export interface ProgressOptions {
  totalBytes: number;
  files: number;
  /** stderr is a terminal: redraw in place. */
  tty: boolean;
  write: (text: string) => void;
  now?: () => number;
  redrawMs?: number;
  plainEveryMs?: number;
  barWidth?: number;
}

export class Progress {
  readonly #totalBytes: number;
  readonly #files: number;
  readonly #tty: boolean;
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #redrawMs: number;
  readonly #plainEveryMs: number;
  readonly #barWidth: number;
  readonly #started: number;
  /** Bytes of the current attempt of each file in flight. */
  readonly #inFlight = new Map<string, number>();
  #doneBytes = 0;
  #doneFiles = 0;
  #lastDraw = Number.NEGATIVE_INFINITY;
  #barShown = false;

  constructor({ totalBytes, files, tty, write, now = Date.now, redrawMs = 100, plainEveryMs = 10_000, barWidth = 30 }: ProgressOptions) {
    this.#totalBytes = totalBytes;
    this.#files = files;
    this.#tty = tty;
    this.#write = write;
    this.#now = now;
    this.#redrawMs = redrawMs;
    this.#plainEveryMs = plainEveryMs;
    this.#barWidth = barWidth;
    this.#started = now();
    // A plain line is due only after a whole interval of work, not at the first byte.
    if (!tty) this.#lastDraw = this.#started;
  }

  /** Bytes of `file` just went out. Called per chunk: cheap unless a redraw is due. */
  sent(file: string, bytes: number): void {
    this.#inFlight.set(file, (this.#inFlight.get(file) ?? 0) + bytes);
    const now = this.#now();
    if (now - this.#lastDraw < (this.#tty ? this.#redrawMs : this.#plainEveryMs)) return;
    this.#lastDraw = now;
    this.#draw(now);
  }

  /** A new attempt of `file` sends it from its first byte again. */
  restart(file: string): void {
    this.#inFlight.set(file, 0);
  }

  /** `file` has its final answer: all its bytes count as processed, whatever they came to. */
  finished(file: string, size: number): void {
    this.#inFlight.delete(file);
    this.#doneBytes += size;
    this.#doneFiles++;
    if (this.#tty) this.#draw(this.#now());
  }

  /** A line of its own (request id, retry); on a terminal the bar is redrawn below it. */
  note(line: string): void {
    if (!this.#tty) return this.#write(`${line}\n`);
    this.#write(`\r\x1b[K${line}\n`);
    this.#barShown = false;
    this.#draw(this.#now());
  }

  /** Leaves the terminal's cursor on a fresh line. */
  end(): void {
    if (this.#tty && this.#barShown) this.#write('\n');
    this.#barShown = false;
  }

  get sentBytes(): number {
    let bytes = this.#doneBytes;
    for (const inFlight of this.#inFlight.values()) bytes += inFlight;
    return Math.min(bytes, this.#totalBytes);
  }

  /** `[#####.....]  42%  12.3/29.0 MB  1/3 files  5.2 MB/s` */
  line(now: number = this.#now()): string {
    const sent = this.sentBytes;
    const ratio = this.#totalBytes === 0 ? 1 : sent / this.#totalBytes;
    const filled = Math.round(ratio * this.#barWidth);
    const mbPerSecond = sent / 1e6 / Math.max(0.001, (now - this.#started) / 1000);
    return (
      `[${'#'.repeat(filled)}${'.'.repeat(this.#barWidth - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}%  ` +
      `${(sent / 1e6).toFixed(1)}/${(this.#totalBytes / 1e6).toFixed(1)} MB  ${this.#doneFiles}/${this.#files} files  ${mbPerSecond.toFixed(1)} MB/s`
    );
  }

  #draw(now: number): void {
    if (this.#tty) {
      this.#write(`\r\x1b[K${this.line(now)}`);
      this.#barShown = true;
    } else {
      this.#write(`progress ${this.line(now)}\n`);
    }
  }
}
