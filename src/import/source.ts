import fs from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import zlib from 'node:zlib';

/** Where an import reads from, and how much of it has been read (for progress). */
export interface ImportSource {
  /** The decompressed bytes. */
  stream: Readable;
  /** Bytes read from the file or stdin so far (compressed bytes when it is gzip). */
  readonly bytesRead: number;
  /** The input's size when it is known (a regular file, or stdin redirected from one). */
  totalBytes: number | undefined;
}

const GZIP_MAGIC = [0x1f, 0x8b];

/**
 * Opens FILE, or stdin for "-", counting the bytes read; gzip is recognised by its first two
 * bytes (not the name), so a `.json` that is really gzip, or gzip piped in, both work.
 */
export async function openSource(file: string): Promise<ImportSource> {
  let fd = 0;
  if (file !== '-') {
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      const { code, message } = err as NodeJS.ErrnoException;
      throw new Error(code === 'ENOENT' ? `there is no file ${file}` : `${file} cannot be read: ${message}`);
    }
  }
  const stat = fs.fstatSync(fd);
  const raw = fs.createReadStream('', { fd, highWaterMark: 1 << 20 });
  let bytesRead = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytesRead += chunk.length;
      done(null, chunk);
    },
  });
  raw.on('error', (err) => counted.destroy(err));
  raw.pipe(counted);
  const first = await peek(counted);
  const gzip = first !== undefined && first.length >= 2 && first[0] === GZIP_MAGIC[0] && first[1] === GZIP_MAGIC[1];
  let stream: Readable = counted;
  if (gzip) {
    const gunzip = zlib.createGunzip();
    counted.on('error', (err) => gunzip.destroy(err));
    stream = counted.pipe(gunzip);
  }
  return {
    stream,
    get bytesRead() {
      return bytesRead;
    },
    totalBytes: stat.isFile() ? stat.size : undefined,
  };
}

/** The stream's first chunk, put back so the next reader still gets it; undefined when it is empty. */
export function peek(stream: Readable): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const onReadable = () => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      stream.unshift(chunk);
      resolve(chunk);
    };
    const onEnd = () => (cleanup(), resolve(undefined));
    const onError = (err: Error) => (cleanup(), reject(err));
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}
