/**
 * The data directory: its format version, its exclusive lock, topic metadata
 * and the file names of segments.
 *
 *   DATA/@format                 {"format":1}
 *   DATA/@lock                   pid and start time of the hub holding the directory
 *   DATA/@trash/                 topics being deleted (removed on start-up)
 *   DATA/<topic>/@topic.json     partitions, config overrides, createdAt
 *   DATA/<topic>/<partition>/    00000000000000000042.log|.index|.timeindex,
 *                                <offset>.snapshot (producer state)
 *
 * Hub files start with '@', which topic names cannot contain, so they never
 * collide with a topic directory.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { TributaryError } from '../../protocol/errors.ts';
import type { TopicConfig } from './log-store.ts';

const FORMAT_VERSION = 1;
const FORMAT_FILE = '@format';
const LOCK_FILE = '@lock';
export const TRASH_DIR = '@trash';
const TOPIC_META_FILE = '@topic.json';

export interface TopicMeta {
  name: string;
  partitions: number;
  /** Only the overrides: hub defaults apply to everything else. */
  config: Partial<TopicConfig>;
  createdAt: number;
}

/** 20-digit zero-padded base offset, as Kafka names segments (sorts as text). */
export function offsetName(offset: number): string {
  return String(offset).padStart(20, '0');
}

export const logPath = (dir: string, base: number): string => path.join(dir, offsetName(base) + '.log');
export const indexPath = (dir: string, base: number): string => path.join(dir, offsetName(base) + '.index');
export const timeIndexPath = (dir: string, base: number): string => path.join(dir, offsetName(base) + '.timeindex');

/** fsync a directory so that created, renamed or removed entries survive a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a small file atomically: temp file, fsync, rename, fsync the directory. */
async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await fsp.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/**
 * Checks or writes the format version. An empty (or new) directory gets the
 * current version; a directory with an unknown version, or with content but
 * no version, is refused: guessing at a layout is how data gets destroyed.
 */
export async function checkFormat(dataDir: string): Promise<void> {
  await fsp.mkdir(dataDir, { recursive: true });
  const file = path.join(dataDir, FORMAT_FILE);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const entries = (await fsp.readdir(dataDir)).filter((e) => e !== LOCK_FILE);
    if (entries.length > 0) {
      throw new TributaryError('BAD_CONFIG', `data directory ${dataDir} is not empty and has no ${FORMAT_FILE} file: refusing to use it as a Tributary data directory`, { dataDir });
    }
    await writeFileAtomic(file, JSON.stringify({ format: FORMAT_VERSION }) + '\n');
    return;
  }
  let version: unknown;
  try {
    version = (JSON.parse(text) as { format?: unknown }).format;
  } catch {
    version = undefined;
  }
  if (version !== FORMAT_VERSION) {
    throw new TributaryError(
      'BAD_CONFIG',
      `data directory ${dataDir} has storage format version ${JSON.stringify(version ?? text.trim().slice(0, 40))}; this hub only understands version ${FORMAT_VERSION}. Use a hub release that matches the directory, or point the hub at another directory.`,
      { dataDir, formatVersion: version, supportedVersion: FORMAT_VERSION },
    );
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** State (field 3) and start time in clock ticks since boot (field 22) of /proc/PID/stat (proc(5)). */
interface ProcStat {
  state: string;
  startTime: string;
}

/**
 * Reads /proc/PID/stat: null when there is no such process, undefined when
 * there is no /proc to ask (not Linux). The command name (field 2) may hold
 * spaces and parentheses, so fields are counted after its last ')'.
 */
function readProcStat(pid: number): ProcStat | null | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ESRCH') return undefined;
    return fs.existsSync('/proc/self/stat') ? null : undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  return { state: fields[0] ?? '', startTime: fields[19] ?? '' };
}

/** This process's start time, recorded in the lock so that a recycled pid is not mistaken for us. */
function ownStartTime(): string | undefined {
  return readProcStat(process.pid)?.startTime || undefined;
}

/**
 * Whether the hub that wrote a lock still runs. A process killed with
 * SIGKILL stays a zombie (state Z, or X while being reaped) until its parent
 * waits for it, and kill(pid, 0) still succeeds on it; a supervisor that
 * restarts at once must not be refused because of that. When the lock
 * records a start time, a live process with the same pid but another start
 * time is a recycled pid, not the holder. Without /proc, kill(pid, 0) is all
 * there is.
 */
function holderAlive(pid: number, startTime: string | undefined): boolean {
  const stat = readProcStat(pid);
  if (stat === undefined) return pidAlive(pid);
  if (stat === null) return false;
  if (stat.state === 'Z' || stat.state === 'X' || stat.state === 'x') return false;
  if (startTime !== undefined && stat.startTime !== '' && stat.startTime !== startTime) return false;
  return true;
}

interface LockHolder {
  pid: number;
  /** Absent in locks written before start times were recorded. */
  startTime?: string;
}

/** Lock file text: the pid on the first line, the process start time (ticks since boot) on the second. */
function parseLock(text: string): LockHolder {
  const [pidText = '', startText = ''] = text.split('\n');
  const pid = Number.parseInt(pidText, 10);
  const startTime = /^\d+$/.test(startText.trim()) ? startText.trim() : undefined;
  return { pid, ...(startTime !== undefined ? { startTime } : {}) };
}

const isLive = (h: LockHolder): boolean => Number.isInteger(h.pid) && h.pid > 0 && holderAlive(h.pid, h.startTime);

/**
 * Takes the exclusive lock: DATA/@lock created with O_EXCL, holding our pid
 * and start time. A lock left by a dead process (SIGKILL, power loss) — or
 * by one that is only a zombie, or whose pid now names another process — is
 * taken over; a lock held by a live process (including this one) is
 * refused. Returns the release function. Node has no flock(2); the O_EXCL
 * file is portable and lets the refusal name the holder. Take-over renames
 * the stale file to a unique name and checks what it moved, which narrows
 * (not closes) the window in which two hubs starting at the same instant
 * over one stale lock both win.
 */
export async function acquireLock(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, LOCK_FILE);
  const startTime = ownStartTime();
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fh = await fsp.open(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644);
      try {
        await fh.writeFile(`${process.pid}\n${startTime ?? ''}\n`);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      return async () => {
        await fsp.rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: LockHolder;
    try {
      holder = parseLock(await fsp.readFile(file, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (isLive(holder)) {
      throw new TributaryError(
        'STORAGE_UNAVAILABLE',
        `data directory ${dataDir} is locked by process ${holder.pid} (another hub is using it); stop that hub or use another directory. If no such hub runs, remove ${file}.`,
        { dataDir, lockPid: holder.pid },
      );
    }
    // Stale (dead, zombie or recycled pid) or unreadable half-written lock: move it aside, then retry the O_EXCL create.
    const aside = `${file}.stale-${process.pid}-${attempt}`;
    try {
      await fsp.rename(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    // Between our read and our rename another hub may have taken the stale
    // lock over and written its own: if what we moved is a live holder, put
    // it back (link fails rather than overwrite) and refuse.
    const moved = parseLock(await fsp.readFile(aside, 'utf8').catch(() => ''));
    if (moved.pid !== holder.pid && isLive(moved)) {
      await fsp.link(aside, file).catch(() => undefined);
      await fsp.rm(aside, { force: true });
      throw new TributaryError('STORAGE_UNAVAILABLE', `data directory ${dataDir} is locked by process ${moved.pid} (another hub is using it)`, { dataDir, lockPid: moved.pid });
    }
    await fsp.rm(aside, { force: true });
  }
  throw new TributaryError('STORAGE_UNAVAILABLE', `could not take the lock on ${dataDir}`, { dataDir });
}

export async function readTopicMeta(topicDir: string): Promise<TopicMeta | undefined> {
  try {
    return JSON.parse(await fsp.readFile(path.join(topicDir, TOPIC_META_FILE), 'utf8')) as TopicMeta;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function writeTopicMeta(topicDir: string, meta: TopicMeta): Promise<void> {
  await writeFileAtomic(path.join(topicDir, TOPIC_META_FILE), JSON.stringify(meta, null, 2) + '\n');
}
