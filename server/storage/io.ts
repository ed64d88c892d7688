/**
 * The file operations the engine performs, behind one seam so that tests can
 * inject EIO/ENOSPC (fault injection) and so that the hot path stays on raw
 * file descriptors (fs.writev with a position, fdatasync) without FileHandle
 * objects per call.
 */
import fs from 'node:fs';

export interface StorageIo {
  open(path: string, flags: string | number, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  /** Writes every buffer at `position`, looping over short writes. */
  writev(fd: number, buffers: Uint8Array[], position: number): Promise<void>;
  /** Reads up to `length` bytes at `position` into `buffer[offset..]`; returns bytes read. */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  fsize(fd: number): Promise<number>;
}

function cb<T>(run: (done: (err: NodeJS.ErrnoException | null, v?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => run((err, v) => (err ? reject(err) : resolve(v as T))));
}

function writevOnce(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
  return cb<number>((done) => fs.writev(fd, buffers as NodeJS.ArrayBufferView[], position, (err, n) => done(err, n)));
}

export const nodeIo: StorageIo = {
  open: (path, flags, mode = 0o644) => cb<number>((done) => fs.open(path, flags, mode, done)),
  close: (fd) => cb<void>((done) => fs.close(fd, done)),
  async writev(fd, buffers, position) {
    let left = 0;
    for (const b of buffers) left += b.length;
    let rest = buffers;
    let pos = position;
    for (;;) {
      const wrote = await writevOnce(fd, rest, pos);
      left -= wrote;
      if (left === 0) return;
      if (wrote <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      // Short write (rare on regular files): continue with what is left.
      pos += wrote;
      let skip = wrote;
      const next: Uint8Array[] = [];
      for (const b of rest) {
        if (skip >= b.length) skip -= b.length;
        else {
          next.push(skip ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      rest = next;
    }
  },
  read: (fd, buffer, offset, length, position) => cb<number>((done) => fs.read(fd, buffer, offset, length, position, (err, n) => done(err, n))),
  fdatasync: (fd) => cb<void>((done) => fs.fdatasync(fd, done)),
  ftruncate: (fd, length) => cb<void>((done) => fs.ftruncate(fd, length, done)),
  fsize: (fd) => cb<number>((done) => fs.fstat(fd, (err, st) => done(err, st?.size))),
};

/** Reads exactly `length` bytes at `position` (fewer only at end of file). */
export async function readFully(io: StorageIo, fd: number, length: number, position: number): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = await io.read(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}
