/**
 * The data directory: its format version, its exclusive lock, topic metadata
 * and the file names of segments.
 *
 *   DATA/@format                 {"format":1}
 *   DATA/@lock                   pid of the hub holding the directory
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

export const FORMAT_VERSION = 1;
export const FORMAT_FILE = '@format';
export const LOCK_FILE = '@lock';
export const TRASH_DIR = '@trash';
export const TOPIC_META_FILE = '@topic.json';

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
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
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

/**
 * Takes the exclusive lock: DATA/@lock created with O_EXCL, holding our pid.
 * A lock left by a dead process (SIGKILL, power loss) is taken over; a lock
 * held by a live process (including this one) is refused. Returns the release
 * function. Node has no flock(2); the O_EXCL file is portable and lets the
 * refusal name the holder. Take-over renames the stale file to a unique
 * name and checks what it moved, which narrows (not closes) the window in
 * which two hubs starting at the same instant over one stale lock both win;
 * a recycled pid makes a stale lock look live: the message says what to do.
 */
export async function acquireLock(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fh = await fsp.open(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644);
      try {
        await fh.writeFile(`${process.pid}\n`);
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
    let pid = NaN;
    try {
      pid = Number.parseInt(await fsp.readFile(file, 'utf8'), 10);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
      throw new TributaryError('STORAGE_UNAVAILABLE', `data directory ${dataDir} is locked by process ${pid} (another hub is using it); stop that hub or use another directory. If no such hub runs, remove ${file}.`, { dataDir, lockPid: pid });
    }
    // Stale (dead pid) or unreadable half-written lock: move it aside, then retry the O_EXCL create.
    const aside = `${file}.stale-${process.pid}-${attempt}`;
    try {
      await fsp.rename(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    // Between our read and our rename another hub may have taken the stale
    // lock over and written its own: if what we moved is a live pid, put it
    // back (link fails rather than overwrite) and refuse.
    const moved = Number.parseInt(await fsp.readFile(aside, 'utf8').catch(() => ''), 10);
    if (moved !== pid && Number.isInteger(moved) && moved > 0 && pidAlive(moved)) {
      await fsp.link(aside, file).catch(() => undefined);
      await fsp.rm(aside, { force: true });
      throw new TributaryError('STORAGE_UNAVAILABLE', `data directory ${dataDir} is locked by process ${moved} (another hub is using it)`, { dataDir, lockPid: moved });
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
