/**
 * Bounded job output: a writer that keeps the first N bytes of an attempt's output in its
 * file, and a pump that drains a pipe into it with one reused buffer.
 *
 * Memory stays constant however much a job prints, and however many jobs a worker runs:
 * each pipe owns one buffer that every read fills again, the buffers go back to a per-thread
 * spare list when the pipe is done, and bytes past the limit are read (so the job never
 * blocks on a full pipe) and dropped.
 *
 * @module
 */

/** Bytes read from a pipe at a time: a Linux pipe's default capacity. */
export const PIPE_CHUNK = 64 * 1024;

/**
 * Opens (creating with mode 0600, or appending to) an attempt's output file, creating a
 * missing parent directory with mode 0700. Asynchronous: the thread runs other attempts
 * while the file system works.
 */
export async function openOutputFile(path: string): Promise<Deno.FsFile> {
  const options: Deno.OpenOptions = { append: true, create: true, mode: 0o600 };
  try {
    return await Deno.open(path, options);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    // The caller normally made the directory; mkdir only on this rare path.
    const dir = path.slice(0, path.lastIndexOf("/"));
    await Deno.mkdir(dir || "/", { recursive: true, mode: 0o700 });
    return await Deno.open(path, options);
  }
}

/**
 * Writes chunks to a file until `limit` bytes are kept, then counts and discards the rest.
 * {@linkcode CappedWriter.finish} appends the truncation marker. Never throws: a file that
 * cannot be created or a failed write (disk full) stops writing and is reported by
 * `error`, and the attempt goes on.
 *
 * Given a path, the file is created on the first byte: an attempt that prints nothing
 * leaves no file. Creating a file is a journaled metadata change that took from 15 µs to
 * 0.9 ms on this project's VM disk (more than spawning the job), and most jobs are silent.
 *
 * Writes are synchronous on purpose: an attempt's writer lives on the execution thread,
 * never the store's; a write to the page cache takes microseconds, at most `limit` bytes
 * are ever written, and synchronous writes keep the two pipes' chunks in arrival order
 * without a queue.
 */
export class CappedWriter {
  #file: Deno.FsFile | null;
  #path: string | null;
  #opening: Promise<void> | null = null;
  #limit: number;
  #kept = 0;
  #written = 0;
  #seen = 0;
  #truncated = false;
  #error: string | null = null;

  /**
   * Writes into `file` (which stays the caller's to close), or into the file at that path,
   * created on the first byte and closed by {@linkcode CappedWriter.close}; keeps `limit`
   * bytes.
   */
  constructor(file: Deno.FsFile | string, limit: number) {
    this.#file = typeof file === "string" ? null : file;
    this.#path = typeof file === "string" ? file : null;
    this.#limit = Number.isNaN(limit) ? 0 : Math.max(0, limit); // NaN would disable the cap
  }

  /** Bytes written to the file, the truncation marker included. */
  get bytesWritten(): number {
    return this.#written;
  }

  /** Bytes the job produced, kept or not. */
  get bytesSeen(): number {
    return this.#seen;
  }

  /** Whether output was dropped (past the limit, or after a failed write). */
  get truncated(): boolean {
    return this.#truncated;
  }

  /** Why writing stopped early, or null. */
  get error(): string | null {
    return this.#error;
  }

  /** Keeps as much of `chunk` as the limit allows. The chunk may be reused afterwards. */
  write(chunk: Uint8Array): void {
    this.#seen += chunk.length;
    if (this.#truncated || chunk.length === 0) return;
    const room = this.#limit - this.#kept;
    if (chunk.length > room) {
      this.#truncated = true;
      if (room > 0) this.#kept += this.#writeAll(chunk.subarray(0, room));
      return;
    }
    this.#kept += this.#writeAll(chunk);
  }

  /** Appends the truncation marker if output was dropped. Call once, at the end. */
  finish(): void {
    if (!this.#truncated) return;
    const marker = `\n[queuectl: output truncated at ${this.#kept} bytes]\n`;
    this.#writeAll(new TextEncoder().encode(marker));
  }

  /**
   * Resolves once the file can be written: at once, or after creating it when this writer
   * was given a path and nothing was written yet. Call before {@linkcode write}; both
   * pipes may wait on the same creation, which never rejects (a failure is `error`).
   */
  ready(): Promise<void> | null {
    if (this.#file !== null || this.#path === null || this.#error !== null) return null;
    return this.#opening ??= openOutputFile(this.#path).then(
      (file) => {
        this.#file = file;
      },
      (e) => {
        this.#error = `cannot create output file ${this.#path}: ${(e as Error).message}`;
        this.#truncated = true;
      },
    );
  }

  /** Closes the file if this writer created it. */
  close(): void {
    if (this.#path === null || this.#file === null) return;
    try {
      this.#file.close();
    } catch { /* already closed */ }
    this.#file = null;
  }

  #writeAll(bytes: Uint8Array): number {
    if (this.#error !== null) return 0;
    let done = 0;
    try {
      // Without ready() first (or while a marker is due and the file never came): nowhere
      // to write; the file is made only by ready(), so writes never block on creating it.
      if (this.#file === null) throw new Error("output file not open");
      while (done < bytes.length) done += this.#file.writeSync(bytes.subarray(done));
    } catch (e) {
      this.#error ??= `cannot write output: ${(e as Error).message}`;
      this.#truncated = true;
    }
    this.#written += done;
    return done;
  }
}

/** A pipe being drained; see {@linkcode drainPipe}. */
export interface PipeDrain {
  /** Resolves when the pipe reached its end or was cancelled. Never rejects. */
  readonly done: Promise<void>;
  /** Whether `done` has resolved. */
  readonly finished: boolean;
  /** Stops reading (closing the pipe) and waits for `done`. */
  cancel(): Promise<void>;
}

/**
 * Pipe buffers of finished drains, reused by the next ones on this thread. Without it every
 * attempt left two 64 KiB buffers for the garbage collector, which V8 collects only once
 * such external memory passed tens of MB per thread: a 4-slot worker grew from 170 to 330 MB
 * over 20,000 jobs (bench/diagnose/memory_growth.ts).
 */
const spareBuffers: ArrayBuffer[] = [];
/** Two pipes for each of up to 16 slots on a thread (2 MiB); more go to the collector. */
const MAX_SPARE_BUFFERS = 32;

function takeBuffer(size: number): ArrayBuffer {
  while (spareBuffers.length > 0) {
    const buffer = spareBuffers.pop()!;
    if (buffer.byteLength === size) return buffer;
  }
  return new ArrayBuffer(size);
}

function giveBack(buffer: ArrayBuffer): void {
  // A detached buffer (a read still owns it) has byteLength 0 and is not kept.
  if (buffer.byteLength > 0 && spareBuffers.length < MAX_SPARE_BUFFERS) spareBuffers.push(buffer);
}

/**
 * Reads `stream` to its end into `writer`, reusing one buffer of `bufferSize` bytes: a
 * BYOB read transfers the buffer into the read and hands it back filled. The buffer comes
 * from, and returns to, this thread's spare list.
 */
export function drainPipe(
  stream: ReadableStream<Uint8Array>,
  writer: CappedWriter,
  bufferSize: number = PIPE_CHUNK,
): PipeDrain {
  const reader = stream.getReader({ mode: "byob" });
  let finished = false;
  const done = (async () => {
    let buffer = takeBuffer(bufferSize);
    try {
      while (true) {
        const { value, done } = await reader.read(new Uint8Array(buffer));
        // The read hands the buffer back, at the end too (empty, with done set).
        if (value !== undefined) buffer = value.buffer as ArrayBuffer;
        if (done || value === undefined) break;
        const ready = value.length > 0 ? writer.ready() : null;
        if (ready !== null) await ready;
        writer.write(value);
      }
    } catch {
      // A cancelled or broken pipe ends the output; the exit status decides the outcome.
    } finally {
      finished = true;
      giveBack(buffer);
    }
  })();
  return {
    done,
    get finished() {
      return finished;
    },
    async cancel() {
      if (!finished) await reader.cancel().catch(() => {});
      await done;
    },
  };
}
