/**
 * Runs a SinkTask: consumes the topic as a member of a consumer group,
 * hands the task batches, and commits what the task wrote to the group.
 *
 * The group (named by the connector, or its `group` key) decides which
 * partitions this instance reads: start two instances of a connector and
 * they share the partitions; kill one and the other takes its partitions
 * after the hub's session timeout; add partitions and the group assigns them.
 *
 * Where a partition starts: the group's committed offset (or `from` when the
 * group has none), unless the task keeps offsets itself (PostgreSQL, in the
 * same transaction as the rows). Then the task's are the truth: onAssign
 * reads them for the newly assigned partitions, records below them are
 * skipped, and the group is told at once so its lag agrees.
 *
 * The handler (onView: a records frame per call, as columns over its bytes:
 * no object per record) only appends a copy of the frame to a buffer;
 * a batch is written when it reaches batchSize or lingerMs after its first
 * record. While a batch is being
 * written the next one fills; a task that can prepare a batch
 * (SinkTask.prepare: PostgreSQL, a transaction of its own) gets it while the
 * one before commits, and commits it after that one (two in flight, commits
 * in order; a batch that cannot commit so is written with put()). The
 * handler waits (so the subscription stops crediting and the hub stops
 * sending) only when no write may start and the next batch is full: bounded
 * memory, pipelined writes. After each write the offsets the task
 * answered are committed to the group (coalesced: one commit in flight).
 *
 * A task that streams (SinkTask.stream: PostgreSQL in insert mode) gets
 * each frame's records during the handler's call instead (no copy kept:
 * it writes them to the target at once, in the batch's transaction); the
 * batch closes when it reaches batchSize, or once its first record has
 * waited lingerMs and no commit is in flight, and commits after the batches
 * before it (at most two waiting; the handler waits beyond that).
 *
 * Revocation: the client stops handing over records of the revoked
 * partitions; onRevoke writes what is buffered, waits for the writes in
 * flight, commits those partitions, and only then returns, so the hub gives
 * them to another member after the last record of ours is written.
 */
import { TributaryError } from '../protocol/errors.ts';
import type { RecordsView, SubscriptionHandle } from '../web-client/index.ts';
import type { ConnectorConfig } from './config.ts';
import type { PartitionOffsets, SinkStream, SinkTask } from './task.ts';
import { StoppedError, Worker, type WorkerDeps } from './worker.ts';

export interface SinkOptions {
  batchSize: number;
  lingerMs: number;
  /** Where a partition starts when neither the task nor the group knows it. */
  from: 'earliest' | 'latest';
  /** Consumer group name (default: the connector's name). */
  group: string;
  /** How often the high watermarks are read for lag (and a failed group commit is tried again). */
  lagIntervalMs: number;
}

/** Transactions in flight at most with a task that prepares: one committing, the next being written. */
const MAX_IN_FLIGHT = 2;

/** Bytes of batches the hub may send ahead of the handler. */
const CREDIT_BYTES = 4 * 1024 * 1024;

export class SinkRunner extends Worker {
  /** Kept frames (bytes and columns), in arrival order; `buffered` records in all. */
  private buffer: RecordsView[] = [];
  private buffered = 0;
  /** When the oldest record in the buffer arrived (performance.now()): it is written lingerMs after that at the latest. */
  private bufferedSince = 0;
  /** Writes in flight, oldest first; each commits only after the one before it (at most maxInFlight). */
  private readonly flights: Array<Promise<void>> = [];
  /** Two when the task can prepare a batch while the one before commits (SinkTask.prepare), else one. */
  private readonly maxInFlight: number;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;
  /** Streaming (SinkTask.stream): the batch being written as it is read, and when its first record arrived. */
  private open: SinkStream | null = null;
  private openSince = 0;
  /** Whether the task streams: known at the first record (stream() answers null when its settings do not). */
  private streaming: boolean | null = null;
  /** Next offset written, per held partition. */
  private readonly committed = new Map<number, number>();
  /** What the group was last told, per held partition. */
  private readonly groupCommitted = new Map<number, number>();
  private groupCommitting: Promise<void> | null = null;
  /** The task's own offsets at assignment: records below are already written. */
  private readonly skipBelow = new Map<number, number>();
  private readonly highWatermarks = new Map<number, number>();
  /** Partitions this instance owns (after onAssign finished). */
  private readonly held = new Set<number>();
  private assignedOnce = false;
  private sub: SubscriptionHandle | null = null;
  /** The task's start (from start()): onAssign waits for it. */
  private taskStarted: Promise<void> = Promise.resolve();
  private lagTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    config: ConnectorConfig,
    private readonly task: SinkTask,
    private readonly o: SinkOptions,
    deps: WorkerDeps,
  ) {
    super(config, 'sink', deps);
    this.maxInFlight = task.prepare ? MAX_IN_FLIGHT : 1;
  }

  async start(): Promise<void> {
    const { topic } = this.config;
    // The task starts (connects, reads its target's catalog) while the client connects and joins the group:
    // onAssign waits for it before asking the task where the partitions start, and no record is handed over before.
    const started = this.retrying('start', () => this.task.start());
    this.taskStarted = started;
    started.catch(() => undefined);
    try {
      this.sub = this.deps.client.subscribe(topic, {
        group: this.o.group,
        from: this.o.from,
        autoCommit: false,
        creditBytes: CREDIT_BYTES,
        // Frames as views: no record objects; values decoded only when the task reads them (a COPY row reads the bytes).
        onAssign: (partitions) => this.onAssign(partitions),
        onRevoke: (partitions) => this.onRevoke(partitions),
        onView: (view) => this.onView(view),
      });
      await started;
      const info = await this.retrying('describe topic', () => this.deps.http.topic(topic));
      this.noteHighWatermarks(info.offsets);
      this.lagTimer = setInterval(() => void this.tick(), this.o.lagIntervalMs);
      this.lagTimer.unref?.();
      if (this.status.state === 'starting') this.status.state = 'running';
      this.updateStatus();
    } catch (e) {
      // The task cannot start (a mistake in its settings): leave the group, so its partitions go to a member that can.
      this.sub?.close();
      this.sub = null;
      if (!(e instanceof StoppedError)) throw e;
    }
  }

  /** New partitions: find where each really starts before any of their records is handled. */
  private async onAssign(partitions: number[]): Promise<void> {
    let own: PartitionOffsets | undefined;
    try {
      await this.taskStarted;
    } catch {
      return; // start() reports it and leaves the group
    }
    try {
      own = await this.retrying('open', () => this.task.open(partitions));
    } catch (e) {
      if (e instanceof StoppedError) return;
      throw e;
    }
    const positions = this.sub?.positions() ?? {};
    const ahead: Record<number, number> = {};
    for (const p of partitions) {
      const group = positions[p];
      const at = own?.get(p);
      if (at !== undefined) {
        this.skipBelow.set(p, at);
        this.committed.set(p, at);
        if (group !== undefined && group < at) ahead[p] = at;
        if (group !== undefined && group > at) {
          // The group was moved past what the table holds (a reset by hand): those records are not re-read.
          this.deps.log.warn({ connector: this.config.name, partition: p, group, stored: at }, 'the group starts past the offsets stored by the sink; records between are skipped');
        }
      } else if (group !== undefined) this.committed.set(p, group);
      this.held.add(p);
    }
    this.assignedOnce = true;
    this.updateStatus();
    // The task's offsets are ahead of the group's (a crash between the two commits): tell the group now.
    if (Object.keys(ahead).length) await this.commitGroup();
  }

  /** Partitions taken away: their records written and committed before the hub hands them on. */
  private async onRevoke(partitions: number[]): Promise<void> {
    const revoked = new Set(partitions);
    if (this.open?.parts.some((r) => revoked.has(r.partition))) this.closeStream();
    while (this.flights.length || this.buffer.some((v) => revoked.has(v.partition))) {
      // (Streaming: the buffer is empty; startWrite would only clear the open batch's linger timer.)
      if (!this.streaming) this.startWrite();
      // The newest settles after all the others (each waits for the one before).
      if (this.flights.length) await this.flights[this.flights.length - 1].catch(() => undefined);
      if (this.stopping) break;
    }
    await this.commitGroup();
    // A lost membership's onRevoke can overlap the next membership's onAssign: keep what is held again.
    const again = new Set(this.sub?.assignment() ?? []);
    for (const p of partitions) {
      if (again.has(p)) continue;
      this.held.delete(p);
      this.committed.delete(p);
      this.groupCommitted.delete(p);
      this.skipBelow.delete(p);
    }
    this.updateStatus();
  }

  /**
   * Called per records frame (one partition, offset order): one call and one
   * await per frame, not per record, so reading costs the sink little more
   * than the client's decode.
   */
  private async onView(view: RecordsView): Promise<void> {
    // Paused: the handler waits, the subscription stops crediting, the hub stops sending.
    if (this.paused) await this.whileUnpaused();
    const p = view.partition;
    const skip = this.skipBelow.get(p) ?? 0;
    let i = 0;
    // Already in the task's system (it keeps offsets itself).
    while (i < view.count && view.offset(i) < skip) i++;
    if (i === view.count) return;
    const last = view.offset(view.count - 1);
    // The log holds at least these records: keeps lag honest between high-watermark reads.
    if ((this.highWatermarks.get(p) ?? 0) <= last) this.highWatermarks.set(p, last + 1);
    if (this.streaming === null) this.streaming = !!this.task.stream && this.openStream() !== null;
    if (this.streaming) return this.addToStream(view, i);
    if (this.buffered === 0) this.bufferedSince = performance.now();
    // The view is valid during this call only: the buffer keeps a copy of the frame.
    this.buffer.push(view.keep(i, view.count));
    this.buffered += view.count - i;
    const free = this.flights.length < this.maxInFlight;
    if (this.buffered >= this.o.batchSize) {
      if (free) this.startWrite();
      else await this.waitForRoom();
    } else if (free && performance.now() - this.bufferedSince >= this.o.lingerMs) {
      // The linger is up, but its timer cannot fire while queued frames are handed over in one run of microtasks (a
      // backlog): write now, so the first write overlaps the reading of the rest instead of waiting for a full batch.
      this.startWrite();
    } else if (!this.lingerTimer) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = null;
        // No room: the next write to finish starts it (the linger is up by then).
        this.startWrite();
      }, this.o.lingerMs);
    }
    // The subscription hands over queued frames in one run of microtasks: let the write's socket I/O (COPY data,
    // the commit's answer) in between, or the database waits until the whole credit window is decoded.
    if (this.flights.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private openStream(): SinkStream | null {
    this.open = this.task.stream?.() ?? null;
    this.openSince = performance.now();
    return this.open;
  }

  /**
   * Streaming: the frame's records go into the open batch (split at batchSize); the batch closes (and commits after
   * the ones before it) when full, or once its first record has waited lingerMs and no commit is in flight (a commit
   * then cannot start sooner, and a larger batch costs the target fewer statements).
   */
  private async addToStream(view: RecordsView, i: number): Promise<void> {
    for (let from = i; from < view.count;) {
      // Stopping: stop() aborted the open batch; a new one would hold its connection past the task's stop.
      if (this.stopping) return;
      const s = this.open ?? this.openStream()!;
      const to = Math.min(view.count, from + this.o.batchSize - s.count);
      const wait = s.add(view, from, to);
      from = to;
      if (s.count >= this.o.batchSize) this.closeStream();
      if (wait) await wait;
    }
    this.lingerStream();
    // Bounded memory: at most maxInFlight closed batches waiting for their commit besides the one filling.
    while (this.flights.length > this.maxInFlight) await this.flights[0].catch(() => undefined);
    // Queued frames are handed over in one run of microtasks: let the COPY's and the commits' socket I/O in between.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Closes the open batch when its linger is up and no commit is in flight, else arms the timer for when it will be. */
  private lingerStream(): void {
    if (!this.open || this.lingerTimer || this.stopping) return;
    const waited = performance.now() - this.openSince;
    if (waited >= this.o.lingerMs && this.flights.length === 0) return this.closeStream();
    this.lingerTimer = setTimeout(
      () => {
        this.lingerTimer = null;
        if (this.flights.length === 0) this.closeStream();
        // Else the commit in flight closes it when it finishes.
      },
      Math.max(0, this.o.lingerMs - waited),
    );
  }

  /** The open batch is done: it commits after the batches before it (or is written again by rewrite()). */
  private closeStream(): void {
    const s = this.open;
    if (!s) return;
    this.open = null;
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
    const prev = this.flights.at(-1) ?? null;
    const done: Promise<void> = this.commitStream(s, prev).finally(() => {
      this.flights.splice(this.flights.indexOf(done), 1);
      if (this.open && !this.stopping && this.flights.length === 0 && performance.now() - this.openSince >= this.o.lingerMs) this.closeStream();
    });
    this.flights.push(done);
  }

  private async commitStream(s: SinkStream, prev: Promise<void> | null): Promise<void> {
    try {
      await prev;
    } catch (err) {
      // Never past a batch that was not written.
      await s.abort();
      throw err;
    }
    if (this.stopping) return await s.abort();
    let safe = await s.commit().catch((err: unknown) => this.fellBack('commit', err));
    if (!safe) {
      try {
        safe = await this.retrying('write', () => s.rewrite());
      } catch (e) {
        if (e instanceof StoppedError) return;
        throw e;
      }
    }
    this.status.records += s.count;
    this.written(
      s.parts.map((r) => r.partition),
      safe,
    );
  }

  /** After a batch of `partitions` was written: the offsets the task answered, as the group's next commit. */
  private written(partitions: number[], safe: PartitionOffsets): void {
    // Only the batch's partitions: a task may answer for partitions another member holds now.
    const mine = new Set(partitions);
    for (const [p, o] of safe) if (mine.has(p) && this.held.has(p)) this.committed.set(p, Math.max(o, this.committed.get(p) ?? 0));
    this.updateStatus();
    void this.commitGroup();
  }

  /** As many batches as may be are in the task's hands and the next is full: wait for the oldest, then hand it over. */
  private async waitForRoom(): Promise<void> {
    while (this.flights.length >= this.maxInFlight && this.buffered >= this.o.batchSize) await this.flights[0];
    if (this.buffered >= this.o.batchSize) this.startWrite();
  }

  private startWrite(): void {
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
    if (this.buffered === 0 || this.flights.length >= this.maxInFlight) return;
    // Frames arrive whole: a batch takes at most batchSize records (splitting a frame), the rest start the next.
    const batch: RecordsView[] = [];
    let room = this.o.batchSize;
    while (this.buffer.length && room > 0) {
      const v = this.buffer[0];
      if (v.count <= room) {
        batch.push(this.buffer.shift()!);
        room -= v.count;
      } else {
        batch.push(v.slice(0, room));
        this.buffer[0] = v.slice(room, v.count);
        room = 0;
      }
    }
    this.buffered -= this.o.batchSize - room;
    // The rest arrived with the batch's last frame: it keeps the batch's start for its linger.
    const done: Promise<void> = this.write(batch, this.flights.at(-1) ?? null).finally(() => {
      this.flights.splice(this.flights.indexOf(done), 1);
      // Records that arrived during the write: written now when full or when the oldest has waited lingerMs (during
      // a backlog it has: the write took longer), else when it will have.
      if (this.buffered && !this.lingerTimer && !this.stopping) {
        const waited = performance.now() - this.bufferedSince;
        if (this.buffered >= this.o.batchSize || waited >= this.o.lingerMs) this.startWrite();
        else this.lingerTimer = setTimeout(() => ((this.lingerTimer = null), this.startWrite()), this.o.lingerMs - waited);
      }
    });
    this.flights.push(done);
  }

  /** Writes a batch after `prev` (the write before it, still in flight, or null). */
  private async write(batch: RecordsView[], prev: Promise<void> | null): Promise<void> {
    let safe: PartitionOffsets | null = null;
    if (prev) {
      // Pipelined: this batch's rows go in while the one before commits; they commit after it, or not at all.
      const prepared = this.task.prepare ? await this.task.prepare(batch).catch((err: unknown) => this.fellBack('prepare', err)) : null;
      try {
        await prev;
      } catch (err) {
        // Never past a batch that was not written.
        await prepared?.abort();
        throw err;
      }
      if (prepared) {
        if (this.stopping) return await prepared.abort();
        safe = await prepared.commit().catch((err: unknown) => this.fellBack('commit', err));
      }
    }
    if (!safe) {
      try {
        safe = await this.retrying('write', () => this.task.put(batch));
      } catch (e) {
        if (e instanceof StoppedError) return;
        throw e;
      }
    }
    for (const v of batch) this.status.records += v.count;
    this.written(
      batch.map((v) => v.partition),
      safe,
    );
  }

  /** A prepared write that failed or could not commit: the batch is written with put() (retried, logged there). */
  private fellBack(what: string, err: unknown): null {
    this.deps.log.debug({ connector: this.config.name, err: err instanceof Error ? err.message : String(err) }, `pipelined ${what} failed; writing the batch again`);
    return null;
  }

  /**
   * Tells the group what is written: at most one commit in flight, carrying
   * the newest offset of every held partition that moved. A failure is
   * harmless: the next write, revocation or lag tick tries again, and a
   * FENCED answer means the partitions moved on (the next owner starts at
   * the task's offsets, or re-delivers: at-least-once).
   */
  private async commitGroup(): Promise<void> {
    while (this.groupCommitting) await this.groupCommitting;
    const sub = this.sub;
    if (!sub) return;
    const offsets: Record<number, number> = {};
    for (const [p, o] of this.committed) if (this.held.has(p) && o > (this.groupCommitted.get(p) ?? -1)) offsets[p] = o;
    if (Object.keys(offsets).length === 0) return;
    const committing = sub
      .commit(offsets)
      .then(
        () => {
          for (const [p, o] of Object.entries(offsets)) if (this.held.has(Number(p))) this.groupCommitted.set(Number(p), o);
        },
        (err: unknown) => {
          if (err instanceof TributaryError && err.code === 'FENCED') return;
          this.deps.log.debug({ connector: this.config.name, err: (err as Error).message }, 'group commit failed; tried again later');
        },
      )
      .finally(() => (this.groupCommitting = null));
    this.groupCommitting = committing;
    await committing;
  }

  private noteHighWatermarks(offsets: Array<{ partition: number; highWatermark: number }>): void {
    for (const o of offsets) this.highWatermarks.set(o.partition, Math.max(o.highWatermark, this.highWatermarks.get(o.partition) ?? 0));
  }

  private async tick(): Promise<void> {
    void this.commitGroup();
    try {
      this.noteHighWatermarks((await this.deps.http.topic(this.config.topic)).offsets);
      this.updateStatus();
    } catch {
      // Lag is advisory; the next tick tries again.
    }
  }

  /** Status of the partitions this instance holds: its lag is the group's lag for them. */
  private updateStatus(): void {
    let lag = 0;
    let known = this.assignedOnce;
    const parts: typeof this.status.partitions = [];
    for (const p of [...this.held].sort((a, b) => a - b)) {
      const hw = this.highWatermarks.get(p) ?? null;
      const c = this.committed.get(p);
      parts.push({ partition: p, committed: c ?? null, highWatermark: hw });
      if (c === undefined) known = (hw ?? 0) === 0 && known;
      else lag += Math.max(0, (hw ?? 0) - c);
    }
    this.status.partitions = parts;
    this.status.lag = known ? lag : null;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.lagTimer) clearInterval(this.lagTimer);
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    const open = this.open;
    this.open = null;
    await Promise.allSettled([...this.flights, open?.abort()]);
    // The next owner starts where this one finished; then leave the group at once.
    await this.commitGroup().catch(() => undefined);
    this.sub?.close();
    this.sub = null;
    await this.task.stop().catch(() => undefined);
    this.status.state = 'stopped';
  }
}
